"""The DuckDB store: ``Store`` (ingest, ratings, judge cache, read-only SQL, Parquet export).

The SQL views ``trials``, ``steps``, ``tool_calls``, ``ratings``, ``experiment_metrics``,
``criterion_metrics`` and ``judge_usage`` are the public query API (see ``docs/sql.md``).
"""

from atif.store.codec import decode_raw
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
    "decode_raw",
    "default_path",
    "load_tasks",
]
