"""The upload's writing side: Arrow tables of the data tables, and the thread that commits them.

Each prepared batch is one transaction: trials it replaces are cleared first, then its
statements run and its Arrow tables are bulk-inserted, then the ``uploads`` row is updated.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import duckdb

from atif.errors import StoreError
from atif.store.codec import encode_raw
from atif.store.results import UploadError, UploadResult
from atif.store.txn import in_transaction

__all__ = ["RATING_COLUMNS", "RAW_COLUMNS", "TRAJECTORY_COLUMNS", "TRIAL_COLUMNS", "Batch", "Writer", "arrow_table", "insert"]

TRAJECTORY_COLUMNS = (
    "trajectory_id", "raw", "raw_encoding", "schema_version", "agent_name", "agent_version", "model_name",
    "step_count", "n_bytes", "raw_id",
)
RAW_COLUMNS = ("raw_id", "trajectory_id", "raw", "raw_encoding", "n_bytes")
TRIAL_COLUMNS = (
    "trial_id", "experiment", "task_name", "epoch", "source_trial_id", "trajectory_id", "reward", "rewards",
    "steps", "cost_usd", "duration_seconds", "input_tokens", "output_tokens", "cached_tokens", "error",
    "metadata", "messages", "messages_from_trajectory", "record_hash", "upload_id", "raw_id", "input_key",
    "input_file", "input_file_key",
)
RATING_COLUMNS = ("trial_id", "criterion", "verdict", "reasoning", "cited_steps", "source")


def _arrow_schemas() -> dict[str, Any]:
    import pyarrow as pa

    s, i32, i64, f64, b = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
    return {
        "trajectory_data": pa.schema(
            [("trajectory_id", s), ("raw", pa.binary()), ("raw_encoding", s), ("schema_version", s),
             ("agent_name", s), ("agent_version", s), ("model_name", s), ("step_count", i32), ("n_bytes", i64),
             ("raw_id", s)]
        ),
        "trajectory_raw": pa.schema(
            [("raw_id", s), ("trajectory_id", s), ("raw", pa.binary()), ("raw_encoding", s), ("n_bytes", i64)]
        ),
        "step_data": pa.schema(
            [("trajectory_id", s), ("path", s), ("step_id", i32), ("source", s), ("timestamp", s),
             ("model_name", s), ("message_chars", i32), ("reasoning_chars", i32), ("tool_call_count", i32),
             ("prompt_tokens", i64), ("completion_tokens", i64), ("cached_tokens", i64), ("cost_usd", f64),
             ("is_copied_context", b)]
        ),
        "tool_call_data": pa.schema(
            [("trajectory_id", s), ("path", s), ("step_id", i32), ("call_index", i32), ("tool_call_id", s),
             ("function_name", s), ("arguments", s), ("result", s), ("is_error", b)]
        ),
        "trial_data": pa.schema(
            [("trial_id", s), ("experiment", s), ("task_name", s), ("epoch", i32), ("source_trial_id", s),
             ("trajectory_id", s), ("reward", f64), ("rewards", s), ("steps", i32), ("cost_usd", f64),
             ("duration_seconds", f64), ("input_tokens", i64), ("output_tokens", i64), ("cached_tokens", i64),
             ("error", s), ("metadata", s), ("messages", s), ("messages_from_trajectory", b), ("record_hash", s),
             ("upload_id", s), ("raw_id", s), ("input_key", s), ("input_file", s), ("input_file_key", s)]
        ),
        "rating_data": pa.schema(
            [("trial_id", s), ("criterion", s), ("verdict", s), ("reasoning", s), ("cited_steps", pa.list_(i32)),
             ("source", s)]
        ),
    }


_SCHEMAS: dict[str, Any] = {}


def arrow_table(table: str, columns: dict[str, list[Any]], keys: list[str] | None = None) -> Any:
    """Column buffers as an Arrow table of the target table's schema (None when empty).

    With ``keys``, the ``trajectory_id`` column holds indexes into ``keys`` and becomes a
    dictionary array: one string per trajectory instead of one per step or call.
    """
    if not any(columns.values()):
        return None  # nothing to write: pyarrow (0.1 s to import) is not needed
    try:
        import pyarrow as pa
    except ImportError:
        raise StoreError("uploading needs pyarrow (pip install pyarrow)") from None

    if not _SCHEMAS:
        _SCHEMAS.update(_arrow_schemas())
    schema = _SCHEMAS[table]
    if not columns[schema.names[0]]:
        return None
    arrays = []
    for f in schema:
        if keys is not None and f.name == "trajectory_id":
            indexes = pa.array(columns[f.name], pa.int32())
            arrays.append(pa.DictionaryArray.from_arrays(indexes, pa.array(keys, f.type)))
        else:
            arrays.append(pa.array(columns[f.name], f.type))
    return pa.Table.from_arrays(arrays, names=schema.names)


def insert(
    db: duckdb.DuckDBPyConnection, table: str, batch: Any, derived: dict[str, str] | None = None, where: str = ""
) -> int:
    """Bulk insert an Arrow table (one scan instead of a round trip per row); the rows inserted.

    ``derived`` maps further target columns to SQL expressions over the Arrow columns; ``where``
    filters the rows (a condition over the Arrow columns, named as they are).
    """
    if batch is None:
        return 0
    names = batch.schema.names
    targets = list(names) + list(derived or {})
    exprs = list(names) + list((derived or {}).values())
    db.register("_atif_batch", batch)
    try:
        row = db.execute(
            f"INSERT INTO {table} ({', '.join(targets)}) SELECT {', '.join(exprs)} FROM _atif_batch AS b"
            + (f" WHERE {where}" if where else "")
        ).fetchone()
        return int(row[0]) if row else 0
    finally:
        db.unregister("_atif_batch")


# On a team store a racing writer may have stored any of a batch's keys since the batch was
# prepared: each keyed insert leaves those out (see atif.store.txn for why that is then exact).
_NEW_TRAJECTORY = "NOT EXISTS (SELECT 1 FROM trajectory_data j WHERE j.trajectory_id = b.trajectory_id)"
_ANTI_JOINS = {
    "trajectory_data": _NEW_TRAJECTORY,
    "trajectory_raw": "NOT EXISTS (SELECT 1 FROM trajectory_raw x WHERE x.raw_id = b.raw_id) "
                      "AND NOT EXISTS (SELECT 1 FROM trajectory_data j WHERE j.raw_id = b.raw_id)",
    "step_data": _NEW_TRAJECTORY,
    "tool_call_data": _NEW_TRAJECTORY,
    "trial_data": "NOT EXISTS (SELECT 1 FROM trial_data t WHERE t.trial_id = b.trial_id)",
}


@dataclass(slots=True)
class Batch:
    """Everything one transaction writes: Arrow tables, statements to run first, trials to replace."""

    tables: dict[str, Any]
    """Table name -> Arrow table (None when empty); ``trajectory_data`` and ``trajectory_raw`` as column
    buffers, their bytes not yet compressed."""
    ops: list[tuple[str, list[Any]]]
    """Statements (with parameters) run before the inserts."""
    replaced: list[str]
    """Stored trial ids this batch overwrites."""
    in_use: set[str]
    """Trajectory ids the batch refers to (never dropped as orphans)."""
    created: int
    """Trials stored for the first time."""
    tids: set[str]
    """Trajectory ids the batch writes."""
    raw_ids: set[str]
    """Ids of the byte strings the batch writes (into either table)."""
    in_use_raw: set[str]
    """Ids of the byte strings the batch's trials name (never dropped as orphans)."""


class Writer:
    """Commits prepared batches on its own thread, one transaction each, in order.

    ``in_flight`` (``in_flight_raw``) holds the trajectory (byte string) ids of batches handed over
    but not yet committed, and
    ``committed`` counts the batches done, so the reading thread knows what the database has.
    """

    def __init__(self, db: duckdb.DuckDBPyConnection, result: UploadResult, *, team: bool = False) -> None:
        self.db = db
        self.team = team
        self.result = result
        self.queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.ratings = 0
        self.created = 0
        self.replaced = 0
        self.committed = 0
        self.in_flight: set[str] = set()
        self.in_flight_raw: set[str] = set()
        self.thread = threading.Thread(target=self._loop, name="atif-upload-writer", daemon=True)
        self.thread.start()

    def put(self, batch: Batch) -> None:
        """Hand a batch over (waits while the previous one is still queued); re-raise a writer failure."""
        self.in_flight.update(batch.tids)
        self.in_flight_raw.update(batch.raw_ids)
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued batch to be committed; re-raise a writer failure."""
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            if self.error is not None:
                continue  # drain: nothing more is written after a failure
            try:
                self._commit(batch)
                self.committed += 1
            except BaseException as exc:  # noqa: BLE001  # re-raised in the producing thread
                self.error = exc
            finally:
                self.in_flight.difference_update(batch.tids)
                self.in_flight_raw.difference_update(batch.raw_ids)

    def _commit(self, b: Batch) -> None:
        traj, extra = b.tables["trajectory_data"], b.tables["trajectory_raw"]
        # One compression call for both tables' bytes.
        frames = encode_raw(traj["raw"] + extra["raw"])
        traj["raw"], extra["raw"] = frames[: len(traj["raw"])], frames[len(traj["raw"]) :]
        tables = dict(b.tables, trajectory_data=arrow_table("trajectory_data", traj),
                      trajectory_raw=arrow_table("trajectory_raw", extra))
        n_trials = tables["trial_data"].num_rows if tables["trial_data"] is not None else 0
        stored, n_ratings, conflicts = in_transaction(
            self.db, lambda: self._write(b, tables, n_trials), team=self.team, what="upload batch"
        )
        # Trials a racing writer stored first are unchanged, not created (team store only), or
        # errors when it stored other content under the same key.
        self.result.unchanged_trials += n_trials - stored - len(conflicts)
        self.result.created_trials -= n_trials - stored
        self.result.errors.extend(
            UploadError(f"trial {task!r} (epoch {epoch}, id {tid[:12]})",
                        "another upload stored this trial at the same time with a different trajectory or record; "
                        "use --replace to overwrite it")
            for tid, task, epoch in conflicts
        )
        self.created += b.created - (n_trials - stored)
        self.replaced += len(b.replaced)
        self.ratings += n_ratings

    def _write(
        self, b: Batch, tables: dict[str, Any], n_trials: int
    ) -> tuple[int, int, list[tuple[str, str, int]]]:
        """The batch's statements, in the caller's transaction.

        Returns the trials inserted, the ratings inserted, and (id, task, epoch) of the batch's
        trials that a racing writer stored with another record (team store only).
        """
        db = self.db
        where = _ANTI_JOINS if self.team else {}
        if b.replaced:
            self._clear_replaced(b.replaced, b.in_use, b.in_use_raw)
        for sql, params in b.ops:
            db.execute(sql, params)
        # Flattened rows first: their anti-join looks for the trajectory this batch is about to add.
        insert(db, "step_data", tables["step_data"], {"ts": "TRY_CAST(timestamp AS TIMESTAMPTZ)"},
               where.get("step_data", ""))
        insert(db, "tool_call_data", tables["tool_call_data"], where=where.get("tool_call_data", ""))
        insert(db, "trajectory_data", tables["trajectory_data"], where=where.get("trajectory_data", ""))
        insert(db, "trajectory_raw", tables["trajectory_raw"], where=where.get("trajectory_raw", ""))
        stored = insert(db, "trial_data", tables["trial_data"], where=where.get("trial_data", ""))
        n_ratings = self._insert_ratings(tables["rating_data"])
        skipped = n_trials - stored
        conflicts: list[tuple[str, str, int]] = []
        if skipped:
            db.register("_atif_trials", tables["trial_data"])
            try:
                conflicts = db.execute(
                    "SELECT b.trial_id, b.task_name, b.epoch FROM _atif_trials b JOIN trial_data t USING (trial_id) "
                    "WHERE t.record_hash <> b.record_hash ORDER BY ALL"
                ).fetchall()
            finally:
                db.unregister("_atif_trials")
        db.execute(
            "UPDATE uploads SET created_trials = ?, unchanged_trials = ?, replaced_trials = ?, "
            "created_ratings = ? WHERE upload_id = ?",
            [self.created + b.created - skipped, self.result.unchanged_trials + skipped - len(conflicts),
             self.replaced + len(b.replaced), self.ratings + n_ratings, self.result.upload_id],
        )
        return stored, n_ratings, conflicts

    def _insert_ratings(self, ratings: Any) -> int:
        if ratings is None:
            return 0
        db = self.db
        db.register("_atif_ratings", ratings)
        try:
            # A human rating in the record replaces a kept human rating; nothing else is overwritten.
            db.execute(
                "DELETE FROM rating_data r USING _atif_ratings b WHERE r.trial_id = b.trial_id "
                "AND r.criterion = b.criterion AND b.source = 'human'"
            )
            inserted = db.execute(
                f"INSERT INTO rating_data ({', '.join(RATING_COLUMNS)}) SELECT b.* FROM _atif_ratings b "
                "WHERE NOT EXISTS (SELECT 1 FROM rating_data r WHERE r.trial_id = b.trial_id "
                "AND r.criterion = b.criterion)"
            ).fetchone()
            return int(inserted[0]) if inserted else 0
        finally:
            db.unregister("_atif_ratings")

    def _clear_replaced(self, ids: list[str], in_use: set[str], in_use_raw: set[str]) -> None:
        db = self.db
        old_tids = [r[0] for r in db.execute(
            "SELECT DISTINCT trajectory_id FROM trial_data WHERE trial_id IN ? "
            "AND trajectory_id IS NOT NULL", [ids]).fetchall()]
        # Human ratings survive a replace; everything derived from the old content goes.
        db.execute("DELETE FROM rating_data WHERE source <> 'human' AND trial_id IN ?", [ids])
        old_raw = [r[0] for r in db.execute(
            "SELECT DISTINCT raw_id FROM trial_data WHERE trial_id IN ? AND raw_id IS NOT NULL", [ids]).fetchall()]
        db.execute("DELETE FROM trial_data WHERE trial_id IN ?", [ids])
        if old_raw:
            # Byte strings no trial names any more go too (a trajectory's first bytes stay with it).
            db.execute(
                "DELETE FROM trajectory_raw WHERE raw_id IN (SELECT unnest(?::VARCHAR[]) "
                "EXCEPT SELECT raw_id FROM trial_data WHERE raw_id IS NOT NULL) AND raw_id NOT IN ?",
                [old_raw, sorted(in_use_raw) or [""]],
            )
        if old_tids:
            # A trajectory no trial refers to any more is dropped with its flattened rows.
            orphans = [r[0] for r in db.execute(
                "SELECT unnest(?::VARCHAR[]) AS tid EXCEPT SELECT trajectory_id FROM trial_data", [old_tids]
            ).fetchall() if r[0] not in in_use]
            if orphans:
                for table in ("tool_call_data", "step_data", "trajectory_raw", "trajectory_data"):
                    db.execute(f"DELETE FROM {table} WHERE trajectory_id IN ?", [orphans])
