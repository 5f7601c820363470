"""The store: ``Store`` (ingest, ratings, judge cache, read-only SQL, Parquet export), ``copy_store``.

A store is one DuckDB file, or a team store: DuckLake over PostgreSQL (see :mod:`atif.store.team`).

The SQL views ``trials``, ``steps``, ``tool_calls``, ``ratings``, ``experiment_metrics``,
``criterion_metrics`` and ``judge_usage`` are the public query API (see ``docs/sql.md``).
"""

from atif.store.codec import decode_raw
from atif.store.copy import copy_store
from atif.store.parquet import write_parquet as write_parquet
from atif.store.ratings import PRECEDENCE, PendingRating
from atif.store.results import UnmatchedTrial, UploadError, UploadResult
from atif.store.store import DEFAULT_DB, VIEWS, Store, default_path
from atif.store.tasks import TaskSpec, load_tasks

__all__ = [
    "DEFAULT_DB",
    "PRECEDENCE",
    "VIEWS",
    "PendingRating",
    "Store",
    "TaskSpec",
    "UnmatchedTrial",
    "UploadError",
    "UploadResult",
    "copy_store",
    "decode_raw",
    "default_path",
    "load_tasks",
]
