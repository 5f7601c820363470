"""Parquet files from rows: a fixed column schema, written by DuckDB (no extra package needed).

Reports hand rows (dicts) and a column schema in DuckDB type names; nested values (lists,
objects) go in ``JSON`` columns, verdict maps in ``MAP(VARCHAR, VARCHAR)``. The file appears
only when complete: it is written beside the target and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import orjson

from atif.errors import StoreError

__all__ = ["write_parquet"]


def write_parquet(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], columns: Mapping[str, str]) -> int:
    """Write ``rows`` to the Parquet file ``path`` with ``columns`` (name -> DuckDB type); return the row count.

    Keys of a row that are not in ``columns`` are left out; missing ones are NULL. An empty
    ``rows`` still gives a file with the schema.
    """
    out = Path(path)
    fd, name = tempfile.mkstemp(suffix=".jsonl", dir=out.parent)
    tmp = Path(name)
    part = out.with_name(out.name + ".part")
    try:
        n = 0
        with os.fdopen(fd, "wb") as f:
            for row in rows:
                f.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS, default=str))
                f.write(b"\n")
                n += 1
        spec = "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in columns.items()) + "}"
        select = ", ".join(_ident(k) for k in columns)
        source = (f"read_json(?, format='newline_delimited', columns={spec})" if n
                  else "(SELECT " + ", ".join(f"NULL::{v} AS {_ident(k)}" for k, v in columns.items()) + " LIMIT 0)")
        con = duckdb.connect()
        try:
            con.execute(f"COPY (SELECT {select} FROM {source}) TO {_lit(str(part))} (FORMAT parquet, COMPRESSION zstd)",
                        [str(tmp)] if n else [])
        except duckdb.Error as exc:
            raise StoreError(f"{out}: cannot write Parquet: {str(exc).strip().splitlines()[0]}") from None
        finally:
            con.close()
        os.replace(part, out)
        return n
    finally:
        tmp.unlink(missing_ok=True)
        part.unlink(missing_ok=True)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'
