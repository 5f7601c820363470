"""Write transactions: every write of the store runs through :func:`in_transaction`.

On a DuckDB file a transaction is just that: one writer holds the file. On a team store
(DuckLake), writers on many machines commit optimistically and DuckLake has no unique keys, so
two writers that both find a trial missing would both insert it. Every write transaction there
first bumps the one row of ``_atif_lock``: two transactions that overlap then conflict at commit
(DuckLake refuses the second), and the loser runs again from the start on a fresh snapshot, where
it finds what the winner wrote. Each write's own checks (``NOT EXISTS``, precedence, the ingest's
anti-joins) are thus made against the state it commits on: idempotency holds by construction.
A conflict that keeps coming back ends, after :data:`MAX_ATTEMPTS`, in a :class:`StoreError`,
with nothing of the transaction written.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import TypeVar

import duckdb

from atif.errors import StoreError

__all__ = ["LOCK_TABLE", "MAX_ATTEMPTS", "in_transaction", "is_conflict"]

T = TypeVar("T")

LOCK_TABLE = "_atif_lock"
MAX_ATTEMPTS = 30
"""Tries of one write transaction on a team store before giving up."""
_BACKOFF_SECONDS = 0.05
_BACKOFF_MAX_SECONDS = 2.0


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckLake refusing a commit that overlaps another writer's."""
    return isinstance(exc, duckdb.Error) and "conflict" in str(exc).lower()


def in_transaction(
    db: duckdb.DuckDBPyConnection,
    fn: Callable[[], T],
    *,
    team: bool,
    what: str,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run ``fn`` in one transaction and commit; return what it returned.

    ``fn`` may run more than once on a team store, so it must not change anything outside the
    database before the commit succeeds (collect counts from its return value instead).
    """
    tries = attempts if team else 1
    for attempt in range(1, tries + 1):
        db.execute("BEGIN TRANSACTION")
        try:
            if team:
                db.execute(f"UPDATE {LOCK_TABLE} SET n = n + 1")
            value = fn()
            db.execute("COMMIT")
            return value
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has ended the transaction already
                db.execute("ROLLBACK")
            if not (team and is_conflict(exc)):
                raise
            if attempt == tries:
                raise StoreError(
                    f"{what}: the commit kept conflicting with other writers ({tries} attempts); "
                    "nothing of it was written, run it again"
                ) from None
            # Jittered exponential backoff: racing writers spread out instead of colliding again.
            delay = min(_BACKOFF_MAX_SECONDS, _BACKOFF_SECONDS * 2 ** min(attempt - 1, 6))
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")
