"""The integer trial key: ``trial_key`` BIGINT in ``trial_data``, ``rating_data`` and ``rating_history``.

Joins of millions of ratings to their trials on a 64-character ``trial_id`` cost most of the
metrics views' time; on a BIGINT they cost a fraction. The key is the first 16 hex digits of the
sha256 trial id read as a signed 64-bit integer, so every writer (several machines at once on a
team store, which has no sequences) derives the same key from the id without coordination.

Two different trial ids with one key would merge their ratings in every join on the key; the
chance is about n²/2⁶⁵ for n trials (3·10⁻⁸ at a million), and the trial writers refuse such a
trial with :class:`~atif.errors.StoreError` (:func:`check_collisions`) instead of storing it.
"""

from __future__ import annotations

import hashlib
import re

import duckdb

from atif.errors import StoreError

__all__ = ["check_collisions", "trial_key", "trial_key_sql"]

_HEX16 = re.compile(r"[0-9a-f]{16}")


def trial_key(trial_id: str) -> int:
    """The key of ``trial_id``: its first 16 hex digits as a signed 64-bit integer.

    An id that does not start with 16 lower-case hex digits (none the store makes) is keyed by
    the sha256 of its text instead, so that any stored id has a key.
    """
    head = trial_id[:16]
    if not _HEX16.fullmatch(head):
        head = hashlib.sha256(trial_id.encode()).hexdigest()[:16]
    return int.from_bytes(bytes.fromhex(head), "big", signed=True)


def trial_key_sql(column: str) -> str:
    """The SQL expression computing :func:`trial_key` of the VARCHAR ``column`` (DuckDB and DuckLake)."""
    head = (f"CASE WHEN regexp_full_match(left({column}, 16), '[0-9a-f]{{16}}') THEN left({column}, 16) "
            f"ELSE left(sha256({column}), 16) END")
    u = f"('0x' || {head})::UBIGINT"
    return f"({u}::HUGEINT - CASE WHEN {u} >= 9223372036854775808 THEN 18446744073709551616::HUGEINT ELSE 0 END)::BIGINT"


def check_collisions(db: duckdb.DuckDBPyConnection, relation: str) -> None:
    """Raise :class:`StoreError` when a trial of ``relation`` (columns ``trial_id``, ``trial_key``)
    shares its key with another trial id, stored or in ``relation`` itself.

    Run in the writing transaction before the insert, so a team store's serialised writers
    see each other's keys.
    """
    rows = db.execute(
        f"""
        WITH b AS (SELECT DISTINCT trial_id, trial_key FROM {relation})
        SELECT b.trial_id, o.trial_id FROM b
        JOIN (SELECT trial_id, trial_key FROM trial_data WHERE trial_key IN (SELECT trial_key FROM b)
              UNION ALL SELECT trial_id, trial_key FROM b) o
          ON o.trial_key = b.trial_key AND o.trial_id <> b.trial_id
        ORDER BY ALL LIMIT 1
        """
    ).fetchall()
    if rows:
        row = rows[0]
        raise StoreError(
            f"trial {row[0]} has the same 64-bit trial key as trial {row[1]} "
            f"(their first 16 hex digits are equal); it is not stored, so that their ratings stay apart"
        )
