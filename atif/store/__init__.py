"""The DuckDB store: ``Store`` (upload, ratings, judge cache, read-only SQL, Parquet export).

The SQL views ``trials``, ``steps``, ``tool_calls``, ``ratings``, ``experiment_metrics``,
``criterion_metrics`` and ``judge_usage`` are the public query API (see ``docs/sql.md``).
"""

from atif.store.ingest import PRECEDENCE, UnmatchedTrial, UploadError, UploadResult, decode_raw
from atif.store.parquet import write_parquet as write_parquet
from atif.store.store import DEFAULT_DB, VIEWS, PendingRating, Store, default_path
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
    "decode_raw",
    "default_path",
    "load_tasks",
]
