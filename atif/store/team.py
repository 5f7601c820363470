"""The team store: a DuckLake catalog in PostgreSQL, its data as Parquet files on a shared path.

A ``--db`` target of the form ``ducklake:postgres:<libpq connection string>`` names one; its data
path comes from ``data_path`` (``--data-path``) or ``$ATIF_DATA_PATH``: a shared folder, or
``s3://bucket/prefix`` (credentials as DuckDB's httpfs reads them from the environment).

DuckLake and the PostgreSQL scanner are DuckDB extensions. Offline they come from the PyPI
packages ``duckdb-extension-ducklake`` and ``duckdb-extension-postgres`` (``pip install
'atif[team]'``), which ship signed binaries for one DuckDB version; without those packages they
are installed and loaded by name, where DuckDB can download them. Unsigned extensions are never
allowed. After the catalog is attached, the connection is locked down like a file store's
(:func:`atif.store.connection.lock_down`), with the data path as the one folder it may touch.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from atif.errors import StoreError

__all__ = ["PREFIX", "TeamTarget", "connect_team", "is_team_target", "parse_target"]

PREFIX = "ducklake:postgres:"
CATALOG = "atif_lake"
_INIT_ATTEMPTS = 10
CONNECT_TIMEOUT_SECONDS = 10
"""libpq's ``connect_timeout`` unless the connection string sets one: an unreachable server fails fast."""

# (PyPI package, module, extension file, name it must be loaded under: the file's entry point)
_PACKAGES = (
    ("duckdb-extension-postgres", "duckdb_extension_postgres", "postgres", "postgres_scanner"),
    ("duckdb-extension-ducklake", "duckdb_extension_ducklake", "ducklake", "ducklake"),
)
_KV = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def is_team_target(target: str | os.PathLike[str]) -> bool:
    """Whether a ``--db`` value names a team store rather than a DuckDB file."""
    return isinstance(target, str) and target.startswith("ducklake:")


@dataclass(frozen=True, slots=True)
class TeamTarget:
    """A parsed team-store target."""

    dsn: str
    """The libpq connection string of the catalog database (as given, plus a connect timeout)."""
    data_path: str
    """Where the Parquet data files go: a folder, or an object-store URL."""
    host: str
    """The catalog server's host (for messages)."""
    port: str
    """Its port (for messages)."""
    label: str
    """The target as shown in messages: without a password."""


def parse_target(target: str, data_path: str | os.PathLike[str] | None) -> TeamTarget:
    """Check a ``ducklake:postgres:...`` target and its data path."""
    if not target.startswith(PREFIX):
        raise StoreError(f"{target.split(' ')[0]}: a team store is named ducklake:postgres:<connection string>")
    dsn = target[len(PREFIX):].strip()
    if not dsn:
        raise StoreError("ducklake:postgres: needs a connection string, e.g. ducklake:postgres:dbname=atif host=db")
    params = _dsn_params(dsn)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    label = PREFIX + _redact(dsn)
    if "connect_timeout" not in params:
        dsn = (f"{dsn}?connect_timeout={CONNECT_TIMEOUT_SECONDS}" if "://" in dsn and "?" not in dsn
               else f"{dsn}&connect_timeout={CONNECT_TIMEOUT_SECONDS}" if "://" in dsn
               else f"{dsn} connect_timeout={CONNECT_TIMEOUT_SECONDS}")
    raw_path = data_path if data_path is not None else os.environ.get("ATIF_DATA_PATH")
    if not raw_path:
        raise StoreError(f"{label}: a team store needs a data path for its Parquet files (--data-path or ATIF_DATA_PATH)")
    path = str(raw_path)
    if "://" not in path:
        path = _local_data_path(Path(path), label)
    return TeamTarget(dsn, path.rstrip("/") + "/", host, port, label)


def _dsn_params(dsn: str) -> dict[str, str]:
    if "://" in dsn:
        u = urlsplit(dsn)
        out = {k: v for k, v in (p.split("=", 1) for p in u.query.split("&") if "=" in p)}
        if u.hostname:
            out["host"] = u.hostname
        if u.port:
            out["port"] = str(u.port)
        if u.username:
            out["user"] = u.username
        return out
    return {k: v.strip("'") for k, v in _KV.findall(dsn)}


def _redact(dsn: str) -> str:
    if "://" in dsn:
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return _KV.sub(lambda m: f"{m.group(1)}=***" if m.group(1) == "password" else m.group(0), dsn)


def _local_data_path(path: Path, label: str) -> str:
    """The data folder, created when missing; :class:`StoreError` when it cannot be written."""
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".atif-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"{label}: the data path {path} is not writable: {exc.strerror or exc}") from None
    return str(path)


def connect_team(target: TeamTarget, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the team catalog attached and in use (not yet locked down)."""
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_unsigned_extensions": False,
    }
    db = duckdb.connect(":memory:", config=config)
    try:
        _load_extensions(db)
        options = [f"DATA_PATH {_literal(target.data_path)}"]
        if read_only:
            options.append("READ_ONLY")
        attach = f"ATTACH {_literal('ducklake:postgres:' + target.dsn)} AS {CATALOG} ({', '.join(options)})"
        for attempt in range(_INIT_ATTEMPTS):
            try:
                db.execute(attach)
                break
            except duckdb.Error as exc:
                # Processes creating a new catalog at once race in PostgreSQL; the losers find it made.
                if attempt + 1 < _INIT_ATTEMPTS and _initialising(exc):
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise StoreError(_attach_error(target, exc)) from None
        db.execute(f"USE {CATALOG}")
    except BaseException:
        db.close()
        raise
    return db


def _initialising(exc: Exception) -> bool:
    msg = str(exc)
    return "Failed to initialize DuckLake" in msg and ("duplicate key" in msg or "already exists" in msg)


def _attach_error(target: TeamTarget, exc: Exception) -> str:
    msg = _redact(" ".join(str(exc).split()))
    low = msg.lower()
    where = f"PostgreSQL at {target.host}:{target.port}"
    if "creating a new ducklake is explicitly disabled" in low:
        return f"{target.label} is not an atif store yet; open it for writing first (e.g. atif upload ...)"
    if "password authentication failed" in low or "authentication failed" in low or "no password supplied" in low:
        return f"{target.label}: {where} refused the credentials: {_pg_reason(msg)}"
    if "does not exist" in low and "database" in low:
        return f"{target.label}: {where}: {_pg_reason(msg)} (create it first: createdb ...)"
    if "connection" in low and ("refused" in low or "timeout" in low or "timed out" in low
                                or "could not translate" in low or "no route" in low or "failed" in low):
        return f"{target.label}: cannot reach {where}: {_pg_reason(msg)}"
    return f"{target.label}: cannot open the team store: {msg[:300]}"


def _pg_reason(msg: str) -> str:
    """libpq's own reason, without DuckDB's wrapping and the (possibly secret) connection string."""
    m = re.search(r"(?:FATAL|failed):\s*(.*)$", msg)
    reason = m.group(1) if m else msg
    return reason.strip().rstrip(".")[:200]


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _load_extensions(db: duckdb.DuckDBPyConnection) -> None:
    """Load the signed ``postgres_scanner`` and ``ducklake`` binaries for the running DuckDB."""
    version = duckdb.__version__
    missing = []
    for package, module, file_stem, name in _PACKAGES:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            missing.append((package, name))
            continue
        base = Path(mod.__file__ or "").parent / "extensions"
        binary = base / f"v{version}" / f"{file_stem}.duckdb_extension"
        if not binary.is_file():
            shipped = sorted(p.name.lstrip("v") for p in base.glob("v*")) or ["none"]
            raise StoreError(
                f"the team store needs DuckDB {' or '.join(shipped)} to match the installed {package} "
                f"(this is DuckDB {version}): pip install 'atif[team]'"
            )
        _load_binary(db, binary, name)
    for package, name in missing:
        try:
            db.execute(f"INSTALL {name}")
            db.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise StoreError(
                f"the team store needs DuckDB's {name} extension, which DuckDB {version} cannot get here "
                f"({' '.join(str(exc).split())[:120]}): pip install 'atif[team]' (it installs {package})"
            ) from None


def _load_binary(db: duckdb.DuckDBPyConnection, binary: Path, name: str) -> None:
    # DuckDB calls the entry point named after the file: the PostgreSQL package's `postgres` binary
    # is `postgres_scanner` inside. A link under that name in a private folder loads it as such.
    with tempfile.TemporaryDirectory(prefix="atif-ext-") as tmp:
        link = Path(tmp) / f"{name}.duckdb_extension"
        link.symlink_to(binary)
        try:
            db.execute(f"LOAD {_literal(str(link))}")
        except duckdb.Error as exc:
            raise StoreError(f"cannot load DuckDB's {name} extension from {binary}: {' '.join(str(exc).split())[:200]}") from None
