"""User SQL over the store: only reads run.

Statements are checked first, so a write is refused with a message that names it: only
``SELECT`` (``WITH ...``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``) and ``EXPLAIN`` run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import duckdb

from atif.errors import StoreError
from atif.store.connection import fetch, first_line

__all__ = ["read_only_statements", "run_query", "write_parquet"]

_READ_STATEMENTS = {"SELECT", "EXPLAIN"}


def read_only_statements(sql: str) -> list[Any]:
    """The statements of ``sql``; :class:`StoreError` when one of them is not a read."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None
    if not statements:
        raise StoreError("no SQL statement given")
    for st in statements:
        kind = st.type.name
        if kind not in _READ_STATEMENTS:
            raise StoreError(
                f"queries are read-only: {kind} statements are refused (only SELECT, WITH ... SELECT, "
                "DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)"
            )
    return statements


def run_query(
    db: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None, decode_json: bool
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read-only SQL; ``(column names, rows)`` of the last statement."""
    statements = read_only_statements(sql)
    try:
        cur = None
        for i, st in enumerate(statements):
            cur = db.execute(st, params if (params and i == len(statements) - 1) else None)
        assert cur is not None
        return fetch(cur, decode_json)
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None


def write_parquet(db: duckdb.DuckDBPyConnection, sql: str, out: str | os.PathLike[str]) -> int:
    """Write the result of one read-only query to a Parquet file; the number of rows."""
    statements = read_only_statements(sql)
    if len(statements) != 1:
        raise StoreError("Parquet output takes exactly one query")
    try:
        rel = db.sql(statements[0].query.rstrip().rstrip(";"))
        rel.write_parquet(str(out))
        row = db.execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()
        return int(row[0]) if row else 0
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None
