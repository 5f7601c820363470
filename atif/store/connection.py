"""Opening the DuckDB file (and saying who holds it when it is locked), and turning results into rows."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import duckdb
import orjson

from atif.errors import StoreError, StoreLockedError

__all__ = ["connect", "fetch", "first_line", "loads"]

_PID = re.compile(r"\(PID (\d+)\)")

try:
    import pytz  # noqa: F401  # DuckDB needs it to hand out TIMESTAMPTZ values as Python objects
except ImportError:
    _TZ_VIA_ARROW = True
else:
    _TZ_VIA_ARROW = False


def connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection to the store file; :class:`StoreLockedError` when another process holds it."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        locked = _locked(path, exc)
        if locked is not None:
            raise locked from None
        raise StoreError(f"{path}: cannot open the store: {first_line(exc)}") from None


def _locked(path: Path, exc: Exception) -> StoreLockedError | None:
    msg = str(exc).lower()
    if "could not set lock" not in msg and "conflicting lock" not in msg:
        return None
    m = _PID.search(str(exc))
    who = f"another process (PID {m.group(1)})" if m else "another process"
    return StoreLockedError(
        f"{path} is in use by {who}; DuckDB allows one writer at a time, so wait for it to finish"
    )


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
        rows = list(zip(*(c.to_pylist() for c in table.columns))) if table.num_rows else []
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
