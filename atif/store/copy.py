"""Copying a whole store into another: a DuckDB file into a team store, and back.

Every table is copied row by row as stored (trajectory bytes included, still compressed), in
one transaction on the target; a row whose key the target holds already is left out, so copying
again copies nothing twice. A rating the target has for a pair stays (the target's word wins).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atif.errors import StoreError
from atif.progress import Progress, ProgressCallback
from atif.store.store import Store

__all__ = ["COPIED_TABLES", "copy_store"]

_BY_TRAJECTORY = "NOT EXISTS (SELECT 1 FROM trajectory_data j WHERE j.trajectory_id = b.trajectory_id)"
COPIED_TABLES: dict[str, str] = {
    # table -> the condition (over the source rows, `b`) for a row the target lacks.
    "collections": "NOT EXISTS (SELECT 1 FROM collections t WHERE t.name = b.name)",
    "tasks": "NOT EXISTS (SELECT 1 FROM tasks t WHERE t.collection = b.collection AND t.name = b.name)",
    "criterion_sets": "NOT EXISTS (SELECT 1 FROM criterion_sets t WHERE t.name = b.name)",
    "criteria": "NOT EXISTS (SELECT 1 FROM criteria t WHERE t.criterion_set = b.criterion_set AND t.label = b.label)",
    "experiments": "NOT EXISTS (SELECT 1 FROM experiments t WHERE t.name = b.name)",
    "uploads": "NOT EXISTS (SELECT 1 FROM uploads t WHERE t.upload_id = b.upload_id)",
    # Flattened rows before their trajectory: they belong to trajectories the target lacks.
    "step_data": _BY_TRAJECTORY,
    "tool_call_data": _BY_TRAJECTORY,
    "trajectory_data": _BY_TRAJECTORY,
    "trajectory_raw": "NOT EXISTS (SELECT 1 FROM trajectory_raw t WHERE t.raw_id = b.raw_id)",
    "trial_data": "NOT EXISTS (SELECT 1 FROM trial_data t WHERE t.trial_id = b.trial_id)",
    "rating_data": "NOT EXISTS (SELECT 1 FROM rating_data t WHERE t.trial_id = b.trial_id AND t.criterion = b.criterion)",
    "rating_history": "NOT EXISTS (SELECT 1 FROM rating_history t WHERE t.trial_id = b.trial_id "
                      "AND t.criterion = b.criterion AND t.replaced_at = b.replaced_at AND t.source = b.source)",
    "judge_cache": "NOT EXISTS (SELECT 1 FROM judge_cache t WHERE t.cache_key = b.cache_key)",
}
_ROWS_PER_BATCH = 20_000


def copy_store(src: Store, dst: Store, *, on_progress: ProgressCallback | None = None) -> dict[str, int]:
    """Copy every experiment, trial, trajectory, rating and cache entry of ``src`` into ``dst``.

    Returns the rows copied per table (0 everywhere when ``dst`` has it all already).
    ``on_progress`` receives ``Progress(stage="copying", done=tables done, total=tables, detail=table)``.
    """
    if dst.read_only:
        raise StoreError(f"{dst.label} is open read-only")
    if src.label == dst.label:
        raise StoreError(f"{src.label}: the source and the target are the same store")

    def copy_all() -> dict[str, int]:
        return {table: _copy_table(src, dst, table, where) for table, where in COPIED_TABLES.items()}

    counts = _write(dst, copy_all)
    if on_progress is not None:
        on_progress(Progress(stage="copying", done=len(counts), total=len(COPIED_TABLES), detail=dst.label))
    return counts


def _write(dst: Store, fn: Callable[[], dict[str, int]]) -> dict[str, int]:
    with dst._lock:
        return dst._write(fn, "cannot copy into the store")


def _copy_table(src: Store, dst: Store, table: str, where: str) -> int:
    with src._lock:
        reader: Any = src.connection.sql(f"SELECT * FROM {table}").to_arrow_reader(_ROWS_PER_BATCH)
    db = dst.connection
    db.register("_atif_copy", reader)
    try:
        row = db.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _atif_copy AS b WHERE {where}").fetchone()
    finally:
        db.unregister("_atif_copy")
    return int(row[0]) if row else 0
