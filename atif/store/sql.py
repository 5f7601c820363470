"""User SQL over the store: only reads run, and nothing a query does outlives it.

Two guards, each enough on its own for what it covers:

1. The store's connection is locked down when it opens (:func:`atif.store.connection.connect`):
   no file or network access beyond the store and the files the caller allowed, no extension
   installed or loaded, and the configuration locked. ``COPY ... TO``, ``EXPORT DATABASE``,
   ``ATTACH`` of a file, ``INSTALL``/``LOAD``, ``read_*('https://...')`` and every ``SET`` fail
   inside DuckDB, whatever statement carries them (``EXPLAIN ANALYZE`` included).
2. User SQL runs in a transaction that is always rolled back, and that it must not end: a write
   that slips through a read-write store (``EXPLAIN ANALYZE DELETE ...``) is undone, and a
   read-only store refuses it outright.

Before either, statements are classified, so that a write is refused with a message naming it:
only ``SELECT`` (``WITH ...``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``) and ``EXPLAIN`` of those run.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import duckdb

from atif.errors import StoreError
from atif.store.connection import fetch, first_line

__all__ = ["read_only_statements", "run_query", "run_statements", "write_parquet"]

T = TypeVar("T")
_READ_STATEMENTS = {"SELECT", "EXPLAIN"}
_REFUSED = "(only SELECT, WITH ... SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)"
_EXPLAIN = re.compile(r"^\s*explain\s+(?:\([^)]*\)\s*)?(?:analy[sz]e\s+)?", re.IGNORECASE)


def read_only_statements(sql: str, db: duckdb.DuckDBPyConnection | None = None) -> list[Any]:
    """The statements of ``sql``; :class:`StoreError` when one of them is not a read.

    Parsed by ``db`` when given: ``duckdb.extract_statements`` opens DuckDB's default in-memory
    database first, 0.03 s of CPU that ``atif query`` would pay on every run.
    """
    statements = _statements(sql, db)
    if not statements:
        raise StoreError("no SQL statement given")
    for st in statements:
        kind = _kind(st, db)
        if kind not in _READ_STATEMENTS:
            raise StoreError(f"queries are read-only: {kind} statements are refused {_REFUSED}")
    return statements


def _statements(sql: str, db: duckdb.DuckDBPyConnection | None = None) -> list[Any]:
    try:
        return list((db or duckdb).extract_statements(sql))
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None


def _kind(st: Any, db: duckdb.DuckDBPyConnection | None = None) -> str:
    """The statement's type; for ``EXPLAIN``, the type of the statement it explains (ANALYZE runs it)."""
    kind = str(st.type.name)
    if kind != "EXPLAIN":
        return kind
    inner = _statements(_EXPLAIN.sub("", st.query, count=1), db)
    if len(inner) != 1:
        return "EXPLAIN"
    inner_kind = _kind(inner[0], db)
    return "EXPLAIN" if inner_kind == "SELECT" else inner_kind


@contextmanager
def _rolled_back(db: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in a transaction that is rolled back however it ends."""
    db.execute("BEGIN TRANSACTION")
    try:
        yield
    finally:
        # When the transaction failed already, DuckDB ended it and ROLLBACK fails too.
        with contextlib.suppress(duckdb.Error):
            db.execute("ROLLBACK")


def _execute(
    db: duckdb.DuckDBPyConnection, statements: list[Any], params: Sequence[Any] | None, consume: Callable[[Any, Sequence[Any] | None], T]
) -> T:
    """Run the statements in the caller's transaction; ``consume(statement, params)`` runs the last one.

    A statement that would end the transaction (``COMMIT``, ``ROLLBACK``, ``BEGIN``) never runs,
    and the transaction is checked to be the same one after each statement.
    """
    for st in statements:
        if st.type.name == "TRANSACTION":
            raise StoreError("queries are read-only: a query may not end or start a transaction")
    txid = _txid(db)
    value: Any = None
    for i, st in enumerate(statements):
        if i == len(statements) - 1:
            value = consume(st, params or None)
        else:
            db.execute(st)
        if _txid(db) != txid:
            raise StoreError("queries are read-only: a query may not end its transaction")
    return value


def _txid(db: duckdb.DuckDBPyConnection) -> Any:
    # current_transaction_id(), not txid_current(): DuckLake's transactions are not DuckDB's own.
    return db.execute("SELECT current_transaction_id()").fetchall()[0][0]  # fetchall: leave no result unfinished


def run_query(
    db: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None, decode_json: bool
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read-only SQL; ``(column names, rows)`` of the last statement."""
    return run_statements(db, read_only_statements(sql, db), params, decode_json)


def run_statements(
    db: duckdb.DuckDBPyConnection, statements: list[Any], params: Sequence[Any] | None, decode_json: bool
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run statements under the connection's guards, unclassified; ``(column names, rows)`` of the last one."""
    try:
        with _rolled_back(db):
            return _execute(db, statements, params, lambda st, p: fetch(db.execute(st, p), decode_json))
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None


def write_parquet(db: duckdb.DuckDBPyConnection, sql: str, out: str | os.PathLike[str]) -> int:
    """Write the result of one read-only query to a Parquet file; the number of rows.

    The file is written through Arrow: the store's connection itself cannot write files.
    """
    import pyarrow.parquet as pq

    statements = read_only_statements(sql, db)
    if len(statements) != 1:
        raise StoreError("Parquet output takes exactly one query")
    def write(st: Any, _params: Any) -> int:
        n = 0
        reader = db.sql(st.query.rstrip().rstrip(";")).to_arrow_reader(100_000)
        with pq.ParquetWriter(str(out), reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                n += batch.num_rows
        return n

    try:
        with _rolled_back(db):
            return _execute(db, statements, None, write)
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None
    except OSError as exc:
        raise StoreError(f"{out}: cannot write: {exc.strerror or exc}") from None
