"""Opening the DuckDB file (and saying who holds it when it is locked), and turning results into rows."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from atif.errors import StoreError, StoreLockedError

__all__ = ["CHECKPOINT_THRESHOLD", "connect", "cursor", "fetch", "first_line", "loads", "lock_down"]

_PID = re.compile(r"\(PID (\d+)\)")

try:
    import pytz  # noqa: F401  # DuckDB needs it to hand out TIMESTAMPTZ values as Python objects
except ImportError:
    _TZ_VIA_ARROW = True
else:
    _TZ_VIA_ARROW = False


CHECKPOINT_THRESHOLD = "128MB"
"""DuckDB's checkpoint threshold: committed data waits in the WAL and in memory until then.

DuckDB's default (16 MiB) rewrites the tables' last, partly filled row groups at every
checkpoint: during an upload that is most of the cost of a commit. Set once, when the
connection opens, as the configuration is locked afterwards; an upload checkpoints at its end.
"""

_LOCK_POLL_SECONDS = 0.1


def connect(
    path: Path, *, read_only: bool, wait: float = 0.0, allow_files: Sequence[str | os.PathLike[str]] = ()
) -> duckdb.DuckDBPyConnection:
    """A locked-down connection to the store file.

    No file, network or extension access beyond the store itself (only ``allow_files`` may be
    read), no extension installed or loaded on demand, and the configuration locked so that no
    statement can turn any of it back on. When another process holds the file, try again for up
    to ``wait`` seconds, then raise :class:`StoreLockedError` naming the holder.
    """
    config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    if not read_only:
        config["checkpoint_threshold"] = CHECKPOINT_THRESHOLD
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            db = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.Error as exc:
            locked = _locked(path, exc, read_only, wait)
            if locked is None:
                raise StoreError(f"{path}: cannot open the store: {first_line(exc)}") from None
            if time.monotonic() >= deadline:
                raise locked from None
            time.sleep(_LOCK_POLL_SECONDS)
    try:
        lock_down(db, allow_files)
    except BaseException:
        db.close()
        raise
    return db


def lock_down(
    db: duckdb.DuckDBPyConnection, allow_files: Sequence[str | os.PathLike[str]], data_dirs: Sequence[str] = ()
) -> None:
    """Turn off file and network access (but ``allow_files`` and ``data_dirs``) and lock the configuration.

    ``data_dirs`` are a team store's data path (a folder, or an object-store URL prefix).
    """
    row = db.execute("SELECT current_setting('lock_configuration')").fetchone()
    if row and row[0]:
        return  # another Store of this process shares the DuckDB instance and locked it already
    files = [os.path.abspath(p) for p in allow_files]
    try:
        if files or data_dirs:
            dirs = [p for p in files if os.path.isdir(p)] + list(data_dirs)
            paths = [p for p in files if not os.path.isdir(p)]
            if paths:
                db.execute(f"SET allowed_paths = {_list_literal(paths)}")
            if dirs:
                db.execute(f"SET allowed_directories = {_list_literal(dirs)}")
        # DuckDB's progress bar writes to stdout, where it would corrupt a report or query printed there.
        db.execute("SET enable_progress_bar = false")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        raise StoreError(f"cannot lock the store's connection down: {first_line(exc)}") from None


def _list_literal(items: list[str]) -> str:
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def _locked(path: Path, exc: Exception, read_only: bool, wait: float) -> StoreLockedError | None:
    msg = str(exc).lower()
    if "could not set lock" not in msg and "conflicting lock" not in msg:
        return None
    m = _PID.search(str(exc))
    who = f"another process (PID {m.group(1)})" if m else "another process"
    if not read_only:
        return StoreLockedError(
            f"{path} is in use by {who}; DuckDB allows one writer at a time, so wait for it to finish"
        )
    waited = f"waited {wait:g} s" if wait > 0 else "did not wait"
    return StoreLockedError(
        f"{path} is being written by {who} (an upload or evaluation?); a DuckDB file takes no reader beside "
        f"its writer, so reads wait for it to finish: {waited} (--wait SECONDS waits longer); "
        "a team store (DuckLake) serves concurrent readers and writers"
    )


def cursor(db: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to the same database, using the same catalog (a team store's, after ``USE``)."""
    cur = db.cursor()
    name = db.execute("SELECT current_database()").fetchall()[0][0]
    if cur.execute("SELECT current_database()").fetchall()[0][0] != name:
        cur.execute('USE "' + name.replace('"', '""') + '"')
    return cur


def fetch(cur: duckdb.DuckDBPyConnection, decode_json: bool = False) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of an executed statement (JSON columns parsed when ``decode_json``).

    Without pytz, DuckDB cannot convert TIMESTAMPTZ values itself; Arrow (which uses
    zoneinfo) converts those results instead.
    """
    desc = cur.description or []
    cols = [d[0] for d in desc]
    if not _TZ_VIA_ARROW or not any("TIME ZONE" in str(d[1]) for d in desc):
        rows = cur.fetchall()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table: Any = cur.to_arrow_table()
        rows = list(zip(*(c.to_pylist() for c in table.columns), strict=False)) if table.num_rows else []
    json_cols = [i for i, d in enumerate(desc) if str(d[1]) == "JSON"] if decode_json else []
    if json_cols and rows:
        rows = [tuple(loads(v) if i in json_cols else v for i, v in enumerate(row)) for row in rows]
    return cols, rows


def loads(v: Any) -> Any:
    """A JSON column value parsed (other values as they are)."""
    return orjson.loads(v) if isinstance(v, (str, bytes)) else v


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (DuckDB's run over several)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
