"""Ingest: store already converted trials (:class:`atif.trial.Converted`) in batches.

Identity is content-addressed: a trajectory's id is the sha256 of its canonical JSON (sorted
keys, compact), a trial's id the sha256 of ``[experiment, task, source trial id (else the
trajectory id, else the record hash), epoch]``. A trial key already stored with the same record
is *unchanged*; with a different record it is an error unless ``replace``.

Each batch of trials is written in one transaction, so a crash leaves whole batches only and
re-running the same upload completes it. The calling thread identifies, validates and flattens
batch k+1 while a writer thread (:mod:`atif.store.writer`) commits batch k.

Storage: a trajectory's bytes (``Converted.raw``, else its canonical JSON) go into
``trajectory_data.raw`` zstd-compressed (:mod:`atif.store.codec`); another byte string of the
same content (re-indented, keys reordered) goes into ``trajectory_raw``, once per distinct
string (``raw_id``, the sha256 of the bytes), and each trial names its own, so every trial
reads back the bytes it was uploaded with. A record's ``messages`` that
are exactly the trajectory's chat messages (:func:`atif.trial.trajectory_messages`) are not
stored but flagged (``messages_from_trajectory``) and made again on reading.
"""

from __future__ import annotations

import collections
import contextlib
import difflib
import gc
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from atif.errors import StoreError
from atif.progress import Progress, ProgressCallback
from atif.schema.identity import canonical_json, trial_id_of
from atif.schema.issues import Issue
from atif.schema.validate import validate
from atif.store.codec import RAW_ENCODING
from atif.store.connection import cursor
from atif.store.flatten import flatten, new_buffers
from atif.store.ratings import PRECEDENCE, pending_count
from atif.store.results import UnmatchedTrial, UploadError, UploadResult
from atif.store.setup import ADDED_QUESTION, NEW_CRITERION_SET, criteria_spec, json_or_none, set_up
from atif.store.tasks import load_tasks
from atif.store.txn import in_transaction
from atif.store.writer import (
    RATING_COLUMNS,
    RAW_COLUMNS,
    TRAJECTORY_COLUMNS,
    TRIAL_COLUMNS,
    Batch,
    Writer,
    arrow_table,
)
from atif.trial import Converted, Failure, Trial, Unchanged, trajectory_messages, trajectory_totals

__all__ = ["Ingest", "KnownInputs", "Prepared", "prepare_converted"]

MAX_WARNINGS = 1000


@dataclass(slots=True)
class _Key:
    """What a trial recognised as unchanged needs of its record: its key."""

    task_name: str
    epoch: int


@dataclass(slots=True)
class _Item:
    file: str
    trial: Trial | _Key
    doc: dict[str, Any] | None = None
    raw: bytes | None = None
    traj_file: str | None = None
    base_dir: str | None = None
    validated: bool = False
    trajectory_id: str | None = None
    raw_id: str | None = None
    trial_id: str = ""
    record_hash: str = ""
    messages_json: bytes | None = None
    unchanged: bool = False
    input_key: str | None = None
    input_file: str | None = None
    input_file_key: str | None = None
    pre: Prepared | None = None


KnownRow = tuple[str, str, str | None, str | None, str, int]


class KnownInputs:
    """Lets the reader of trials files ask the running upload which lines it stored before.

    Pass one to :func:`atif.adapters.sources.read_sources` (``known=``) and to
    :meth:`atif.store.Store.ingest` (``known_inputs=``): the ingest answers while it runs, from
    its own read connection, so that a re-upload neither parses nor validates unchanged trials.
    Unbound (before or after the upload), it knows nothing.
    """

    def __init__(self) -> None:
        self.lookup: Callable[[list[str]], dict[str, KnownRow]] | None = None

    def __call__(self, keys: list[str]) -> dict[str, KnownRow]:
        return self.lookup(keys) if self.lookup is not None else {}


@dataclass(slots=True)
class Prepared:
    """A converted trial identified, validated and flattened ahead (in a worker process), so that
    the ingest needs neither its parsed document nor the time to walk it.

    Made by :func:`prepare_converted`; :meth:`atif.store.Store.ingest` takes it in place of the
    :class:`~atif.trial.Converted` it was made of, with the same outcome.
    """

    converted: Converted
    """The trial, its warnings and raw bytes; ``trajectory`` dropped (None)."""
    trajectory_id: str | None
    raw_id: str | None
    record_hash: str
    messages_json: bytes | None
    check: tuple[str | None, list[Issue]] | None
    """Strict validation of the trajectory: the error reason (None when valid) and the warnings;
    None when the trajectory came validated."""
    meta: tuple[Any, ...]
    """``trajectory_data`` columns read from the document: schema version, agent name, agent
    version, model name, step count."""
    steps: dict[str, list[Any]]
    calls: dict[str, list[Any]]
    """Flattened rows, their trajectory index 0."""
    totals: dict[str, Any]
    from_trajectory: bool


def prepare_converted(got: Converted | Failure | Unchanged, epoch: int | None) -> Prepared | Failure | Unchanged:
    """Everything :class:`Ingest` derives from a trial's document, derived here (see :class:`Prepared`).

    ``epoch`` is the upload's ``epoch`` option. Failures and unchanged trials pass through.
    """
    if not isinstance(got, Converted):
        return got
    trial = got.trial
    if epoch is not None and "epoch" not in trial.model_fields_set:
        trial.epoch = epoch
    doc = got.trajectory
    tid, raw, raw_id, messages_json, record_hash = identify(trial, doc, got.raw)
    check: tuple[str | None, list[Issue]] | None = None
    meta: tuple[Any, ...] = ()
    steps, calls = new_buffers()
    totals: dict[str, Any] = {}
    from_trajectory = False
    if doc is not None:
        if not got.validated:
            report = validate(doc, mode="strict", base_dir=got.base_dir)
            errs = report.errors
            check = (_issue_reason(errs) if errs else None, report.warnings)
        meta = trajectory_meta(doc)
        flatten(doc, 0, steps, calls)
        totals = _totals(trial, doc)
        from_trajectory = trial.messages is not None and trajectory_messages_equal(trial.messages, doc)
    got.trajectory, got.raw = None, raw
    return Prepared(got, tid, raw_id, record_hash, messages_json, check, meta, steps, calls, totals, from_trajectory)


def identify(trial: Trial, doc: dict[str, Any] | None, raw: bytes | None) -> tuple[
    str | None, bytes | None, str | None, bytes | None, str
]:
    """``(trajectory id, raw bytes, raw id, canonical messages or None, record hash)`` of a trial."""
    tid = raw_id = None
    if doc is not None:
        canonical = canonical_json(doc)
        tid = hashlib.sha256(canonical).hexdigest()
        if raw is None:
            raw = canonical
        raw_id = tid if raw is canonical else hashlib.sha256(raw).hexdigest()
    # The conversation is often as big as the trajectory: serialise it once, canonically, for
    # both the hash and the stored column, instead of through the model's serializer.
    messages = canonical_json(trial.messages) if trial.messages is not None else b"null"
    record = trial.model_dump(mode="json", exclude={"messages"})
    record["trajectory"] = tid
    h = hashlib.sha256(canonical_json(record))
    h.update(b"\x00")
    h.update(messages)
    return tid, raw, raw_id, (messages if trial.messages is not None else None), h.hexdigest()


def trajectory_meta(doc: dict[str, Any]) -> tuple[Any, ...]:
    """``(schema_version, agent_name, agent_version, model_name, step_count)`` of a document."""
    agent_value = doc.get("agent")
    agent: dict[str, Any] = agent_value if isinstance(agent_value, dict) else {}
    s = doc.get("steps")
    return (_str(doc.get("schema_version")), _str(agent.get("name")), _str(agent.get("version")),
            _str(agent.get("model_name")), len(s) if isinstance(s, list) else None)


def _totals(t: Trial, doc: dict[str, Any]) -> dict[str, Any]:
    if None in (t.steps, t.cost_usd, t.input_tokens, t.output_tokens, t.cached_tokens):
        try:
            return trajectory_totals(doc)
        except (TypeError, ValueError, AttributeError):
            return {}
    return {}


def _issue_reason(issues: list[Any]) -> str:
    first = issues[0]
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{first.path or '/'}: [{first.code}] {first.message}{more}"


class Ingest:
    """One upload into an open read-write connection (used by :meth:`atif.store.Store.ingest`)."""

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        experiment: str,
        *,
        collection: str | None = None,
        criteria: dict[str, Any] | None = None,
        tasks_file: Path | None = None,
        epoch: int | None = None,
        create_missing_tasks: bool = False,
        replace: bool = False,
        batch_size: int = 500,
        on_progress: ProgressCallback | None = None,
        team: bool = False,
        known_inputs: KnownInputs | None = None,
    ) -> None:
        if not isinstance(experiment, str) or not experiment.strip():
            raise StoreError("an experiment name is required")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
            raise StoreError(f"epoch must be a whole number >= 1, got {epoch!r}")
        if batch_size < 1:
            raise StoreError(f"batch_size must be >= 1, got {batch_size}")
        self.db = db
        self.team = team
        self.experiment = experiment
        self.collection_arg = collection
        self.criteria = criteria_spec(criteria) if criteria is not None else None
        self.tasks = load_tasks(tasks_file) if tasks_file is not None else None
        self.epoch = epoch
        self.create_missing = create_missing_tasks
        self.replace = replace
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.upload_id = uuid.uuid4().hex
        self.instructions: dict[str, str] = {}
        # Trial key -> record hash of trials met in batches not yet committed; older ones are found
        # in the database, which keeps memory bounded by the batch size, not the input size.
        self.seen: dict[bytes, bytes] = {}
        self.seen_batches: collections.deque[tuple[int, list[bytes]]] = collections.deque()
        self.batches_made = 0
        self.closest_cache: dict[str, list[str]] = {}
        self.known_inputs = known_inputs

    def run(self, items: Iterable[Converted | Failure | Unchanged | Prepared], sources: list[str]) -> UploadResult:
        """Store every trial of ``items``; ``sources`` are recorded with the upload.

        Finding no trial at all is an error of the result (its ``ok`` is False).
        """
        db = self.db
        self.sources = sources
        self.setup = in_transaction(
            db,
            lambda: set_up(
                db, self.experiment, upload_id=self.upload_id, collection=self.collection_arg,
                criteria=self.criteria, tasks=self.tasks, sources=sources,
            ),
            team=self.team,
            what=f"upload to {self.experiment!r}",
        )
        self.result = self.setup.result
        # Parsed trajectories and records are large trees of dicts and lists that die by reference
        # counting; the cycle collector would only traverse them again and again (about a tenth
        # of the upload's time). It is switched back on however the upload ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(items)
        finally:
            if collecting:
                gc.enable()

    def _run(self, items: Iterable[Converted | Failure | Unchanged | Prepared]) -> UploadResult:
        db, result = self.db, self.result
        self.reads = cursor(db)  # this thread's own connection while the writer owns `db`
        writer = self.writer = Writer(db, result, team=self.team)
        if self.known_inputs is not None:
            self.known_inputs.lookup = self._known_lines
        batch: list[_Item] = []
        done = found = 0
        try:
            for got in items:
                item = self._item(got)
                if item is None:
                    continue
                found += 1
                if not item.unchanged:
                    self._identify(item)
                batch.append(item)
                if len(batch) >= self.batch_size:
                    writer.put(self._prepare(batch))
                    done += len(batch)
                    batch = []
                    self._progress(done)
            if batch:
                writer.put(self._prepare(batch))
                done += len(batch)
        finally:
            if self.known_inputs is not None:
                self.known_inputs.lookup = None
            writer.close()
            self.reads.close()
        self._progress(done)
        if not found and not result.errors:
            # Everything was passed over (e.g. a folder of files no adapter recognises): that is a failure.
            skipped = f"; {len(result.warnings)} inputs or notes passed over, see the warnings" if result.warnings else ""
            result.errors.append(UploadError(", ".join(self.sources) or "(no input)",
                                             f"nothing to upload: no trial found{skipped}"))
        result.created_ratings = writer.ratings
        if result.criterion_set is not None:
            result.pending_evaluations = pending_count(db, self.experiment)
        in_transaction(
            db,
            lambda: db.execute(
                "UPDATE uploads SET finished_at = current_timestamp, created_trials = ?, unchanged_trials = ?, "
                "replaced_trials = ?, created_ratings = ?, n_errors = ?, errors = ? WHERE upload_id = ?",
                [result.created_trials, result.unchanged_trials, result.replaced_trials, result.created_ratings,
                 len(result.errors) + len(result.unmatched),
                 json_or_none([asdict(e) for e in result.errors] + [asdict(u) for u in result.unmatched]),
                 self.upload_id],
            ),
            team=self.team,
            what=f"upload to {self.experiment!r}",
        )
        if self.team:
            return result  # DuckLake has no WAL to checkpoint: each commit wrote its Parquet files
        # What the upload committed waits in the WAL below the store's high checkpoint threshold
        # (atif.store.connection.CHECKPOINT_THRESHOLD): write it into the file now. When another
        # transaction of this process is open, DuckDB checkpoints later by itself.
        with contextlib.suppress(duckdb.TransactionException):
            db.execute("CHECKPOINT")
        return result

    def _progress(self, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(stage="uploading", done=done, detail=self.experiment))

    def _input_key(self, key: str) -> str:
        """The stored ``input_key`` of a line: its hash, and the ``--epoch`` that applied to it."""
        return key if self.epoch is None else f"{key}/{self.epoch}"

    def _known_lines(self, keys: list[str]) -> dict[str, KnownRow]:
        """Trials of this experiment stored from lines with these keys (see :class:`KnownInputs`)."""
        stored = {self._input_key(k): k for k in keys}
        rows = self.reads.execute(
            "SELECT input_key, trial_id, record_hash, input_file, input_file_key, task_name, epoch FROM trial_data "
            "WHERE experiment = ? AND input_key IN ?", [self.experiment, list(stored)]
        ).fetchall()
        return {stored[r[0]]: (r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}

    def _item(self, got: Converted | Failure | Unchanged | Prepared) -> _Item | None:
        """The trial of a converted input; a failure or warning goes to the result instead."""
        if isinstance(got, Prepared):
            item = self._item(got.converted)
            if item is not None:
                item.pre = got
            return item
        result = self.result
        if isinstance(got, Unchanged):
            if got.instruction:
                self.instructions.setdefault(got.task_name, got.instruction)
            return _Item(got.source, _Key(got.task_name, got.epoch), trial_id=got.trial_id,
                         record_hash=got.record_hash, unchanged=True)
        if isinstance(got, Failure):
            if not got.skipped:
                result.errors.append(UploadError(got.source, got.reason))
            elif len(result.warnings) < MAX_WARNINGS:
                result.warnings.append(UploadError(got.source, got.reason))
            return None
        for w in got.warnings[: max(MAX_WARNINGS - len(result.warnings), 0)]:
            result.warnings.append(UploadError(got.source, w))
        trial = got.trial
        if got.instruction:
            self.instructions.setdefault(trial.task_name, got.instruction)
        if self.epoch is not None and "epoch" not in trial.model_fields_set:
            trial.epoch = self.epoch
        # A path in `trajectory` says where the bytes were read (errors name it); identity uses the content.
        traj_file = trial.trajectory if isinstance(trial.trajectory, str) else None
        return _Item(got.source, trial, doc=got.trajectory, raw=got.raw, traj_file=traj_file,
                     base_dir=got.base_dir, validated=got.validated,
                     input_key=self._input_key(got.input_key) if got.input_key else None,
                     input_file=got.input_file, input_file_key=got.input_file_key)

    def _identify(self, item: _Item) -> None:
        trial = item.trial
        assert isinstance(trial, Trial)  # an unchanged trial (_Key) is identified already
        pre = item.pre
        if pre is not None:
            item.trajectory_id, item.raw_id, item.record_hash = pre.trajectory_id, pre.raw_id, pre.record_hash
            item.messages_json = pre.messages_json
        else:
            item.trajectory_id, item.raw, item.raw_id, item.messages_json, item.record_hash = identify(
                trial, item.doc, item.raw)
        source_key = trial.trial_id or item.trajectory_id or item.record_hash
        item.trial_id = trial_id_of(self.experiment, trial.task_name, source_key, trial.epoch)

    def _closest(self, name: str) -> list[str]:
        hit = self.closest_cache.get(name)
        if hit is None:
            hit = difflib.get_close_matches(name, sorted(self.setup.known_tasks), n=3, cutoff=0.5)
            self.closest_cache[name] = hit
        return hit

    def _prepare(self, batch: list[_Item]) -> Batch:
        """Classify, validate and flatten one batch; return what the writer must do with it."""
        reads, result, setup = self.reads, self.result, self.setup
        while self.seen_batches and self.seen_batches[0][0] <= self.writer.committed:
            for key in self.seen_batches.popleft()[1]:
                self.seen.pop(key, None)
        self.batches_made += 1
        keys: list[bytes] = []
        self.seen_batches.append((self.batches_made, keys))
        # A trial recognised as unchanged was read from the store moments ago, and on a local store
        # this process is its only writer: only a team store is asked again.
        ids = [it.trial_id for it in batch if self.team or not it.unchanged]
        existing = dict(
            reads.execute("SELECT trial_id, record_hash FROM trial_data WHERE trial_id IN ?", [ids]).fetchall()
        ) if ids else {}
        if not self.team:
            existing.update((it.trial_id, it.record_hash) for it in batch if it.unchanged)
        new_tasks: dict[str, str | None] = {}
        to_store: list[_Item] = []
        replaced: list[str] = []
        for it in batch:
            task = it.trial.task_name
            if task not in setup.known_tasks and task not in new_tasks:
                if self.create_missing or setup.tasks_from_trials:
                    new_tasks[task] = self.instructions.get(task)
                else:
                    result.unmatched.append(UnmatchedTrial(it.file, task, self._closest(task)))
                    continue
            key = bytes.fromhex(it.trial_id)
            digest = bytes.fromhex(it.record_hash)
            prev = self.seen.get(key)
            if prev is not None:
                if prev == digest:
                    result.unchanged_trials += 1
                else:
                    result.errors.append(UploadError(
                        it.file,
                        f"trial {task!r} (epoch {it.trial.epoch}) appears twice in this upload with different content",
                    ))
                continue
            old = existing.get(it.trial_id)
            if it.unchanged and old != it.record_hash:
                # Recognised from its bytes, then deleted or replaced by another writer before this batch.
                result.errors.append(UploadError(it.file, "the stored trial changed while this upload ran; "
                                                          "upload it again"))
                continue
            if old is not None:
                if old == it.record_hash:
                    self.seen[key] = digest
                    keys.append(key)
                    result.unchanged_trials += 1
                    continue
                if not self.replace:
                    result.errors.append(UploadError(
                        it.file,
                        f"trial {task!r} (epoch {it.trial.epoch}, id {it.trial_id[:12]}) is already stored with a "
                        "different trajectory or record; use --replace to overwrite it",
                    ))
                    continue
                replaced.append(it.trial_id)
            self.seen[key] = digest
            keys.append(key)
            to_store.append(it)

        # Trajectories already stored (by an earlier upload, or a batch of this one still being
        # committed) are neither validated nor written again.
        tids = list({it.trajectory_id for it in to_store if it.trajectory_id})
        # Snapshot before querying: a batch committed in between is then either seen by the
        # query or still in the snapshot, never neither.
        in_flight = set(self.writer.in_flight)
        known = {
            r[0]
            for r in reads.execute(
                "SELECT trajectory_id FROM trajectory_data WHERE trajectory_id IN ?", [tids]
            ).fetchall()
        } if tids else set()
        known.update(t for t in tids if t in in_flight)
        # Likewise the byte strings: each distinct one is stored once, whichever trial brought it.
        raw_ids = list({it.raw_id for it in to_store if it.raw_id})
        in_flight_raw = set(self.writer.in_flight_raw)
        known_raw = {
            r[0]
            for r in reads.execute(
                "SELECT raw_id FROM trajectory_data WHERE trajectory_id IN $1 AND raw_id IN $2 "
                "UNION ALL SELECT raw_id FROM trajectory_raw WHERE raw_id IN $2", [tids, raw_ids]
            ).fetchall()
        } if raw_ids else set()
        known_raw.update(r for r in raw_ids if r in in_flight_raw)
        checked: dict[str, str | None] = {}
        final: list[_Item] = []
        for it in to_store:
            tid = it.trajectory_id
            if tid is not None and tid not in known and not it.validated:
                if tid not in checked:
                    if it.pre is not None and it.pre.check is not None:
                        checked[tid], warnings = it.pre.check
                    else:
                        report = validate(it.doc, mode="strict", base_dir=it.base_dir)
                        errs = report.errors
                        checked[tid], warnings = (_issue_reason(errs) if errs else None), report.warnings
                    if len(result.warnings) < MAX_WARNINGS:
                        result.warnings.extend(
                            UploadError(it.traj_file or it.file, f"{w.path or '/'}: [{w.code}] {w.message}")
                            for w in warnings
                        )
                if checked[tid] is not None:
                    result.errors.append(UploadError(it.traj_file or it.file, f"invalid ATIF: {checked[tid]}"))
                    self.seen.pop(bytes.fromhex(it.trial_id), None)
                    if it.trial_id in replaced:
                        replaced.remove(it.trial_id)
                    continue
            final.append(it)
        return self._build(final, known, known_raw, new_tasks, replaced)

    def _build(
        self, items: list[_Item], known: set[str], known_raw: set[str], new_tasks: dict[str, str | None],
        replaced: list[str],
    ) -> Batch:
        result, setup = self.result, self.setup
        traj: dict[str, list[Any]] = {n: [] for n in TRAJECTORY_COLUMNS}
        extra: dict[str, list[Any]] = {n: [] for n in RAW_COLUMNS}
        written_raw: set[str] = set()
        steps, calls = new_buffers()
        trials: dict[str, list[Any]] = {n: [] for n in TRIAL_COLUMNS}
        ratings: dict[str, list[Any]] = {n: [] for n in RATING_COLUMNS}
        written: set[str] = set()
        new_labels: list[str] = []
        for it in items:
            doc, pre = it.doc, it.pre
            tid = it.trajectory_id
            if (doc is not None or pre is not None) and tid is not None and tid not in known and tid not in written:
                written.add(tid)
                index = len(traj["trajectory_id"])
                meta = pre.meta if pre is not None else trajectory_meta(doc)  # type: ignore[arg-type]
                traj["trajectory_id"].append(tid)
                traj["raw"].append(it.raw)
                traj["raw_encoding"].append(RAW_ENCODING)
                for name, value in zip(_META_COLUMNS, meta, strict=True):
                    traj[name].append(value)
                traj["n_bytes"].append(len(it.raw) if it.raw is not None else None)
                traj["raw_id"].append(it.raw_id)
                if it.raw_id is not None:
                    written_raw.add(it.raw_id)
                if pre is not None:
                    _extend(steps, pre.steps, index)
                    _extend(calls, pre.calls, index)
                else:
                    flatten(doc, index, steps, calls)  # type: ignore[arg-type]
            elif it.raw is not None and it.raw_id is not None and it.raw_id not in known_raw \
                    and it.raw_id not in written_raw:
                # The same content in other bytes: kept, so that this trial reads back its own.
                written_raw.add(it.raw_id)
                extra["raw_id"].append(it.raw_id)
                extra["trajectory_id"].append(tid)
                extra["raw"].append(it.raw)
                extra["raw_encoding"].append(RAW_ENCODING)
                extra["n_bytes"].append(len(it.raw))
            self._trial_row(it, trials)
            it.pre = None
            trial = it.trial
            assert isinstance(trial, Trial)  # unchanged trials are never built
            if trial.criterion_ratings:
                best: dict[str, Any] = {}
                for r in trial.criterion_ratings:
                    cur = best.get(r.criterion)
                    if cur is None or PRECEDENCE[r.source] >= PRECEDENCE[cur.source]:
                        best[r.criterion] = r
                for label, r in best.items():
                    if label not in setup.criterion_labels:
                        setup.criterion_labels.add(label)
                        new_labels.append(label)
                    ratings["trial_id"].append(it.trial_id)
                    ratings["criterion"].append(label)
                    ratings["verdict"].append(r.rating)
                    ratings["reasoning"].append(r.reasoning)
                    ratings["cited_steps"].append(r.cited_steps)
                    ratings["source"].append(r.source)
            it.doc = it.raw = None

        ops: list[tuple[str, list[Any]]] = []
        if new_tasks:
            ops.append((
                (
                    "INSERT INTO tasks (collection, name, instruction, tags) "
                    "SELECT $1, n.name, n.instruction, []::VARCHAR[] "
                    "FROM (SELECT unnest($2::VARCHAR[]) AS name, unnest($3::VARCHAR[]) AS instruction) n "
                    "WHERE NOT EXISTS (SELECT 1 FROM tasks k WHERE k.collection = $1 AND k.name = n.name)"
                ),
                [setup.collection, list(new_tasks), list(new_tasks.values())],
            ))
            setup.known_tasks.update(new_tasks)
        if new_labels:
            ops.extend(self._label_ops(new_labels))
        created = len(items) - len(replaced)
        result.created_tasks += len(new_tasks)
        result.created_trials += created
        result.replaced_trials += len(replaced)
        result.added_criteria.extend(new_labels)
        return Batch(
            tables={
                # Compressed and made Arrow by the writer: zstd releases the GIL, so it overlaps this thread.
                "trajectory_data": traj,
                "trajectory_raw": extra,
                "step_data": arrow_table("step_data", steps, traj["trajectory_id"]),
                "tool_call_data": arrow_table("tool_call_data", calls, traj["trajectory_id"]),
                "trial_data": arrow_table("trial_data", trials),
                "rating_data": arrow_table("rating_data", ratings),
            },
            ops=ops,
            replaced=sorted(replaced),
            in_use=written | {it.trajectory_id for it in items if it.trajectory_id},
            created=created,
            tids=written,
            raw_ids=written_raw,
            in_use_raw={it.raw_id for it in items if it.raw_id},
        )

    def _label_ops(self, labels: list[str]) -> list[tuple[str, list[Any]]]:
        result, setup = self.result, self.setup
        ops: list[tuple[str, list[Any]]] = []
        cset = result.criterion_set
        if cset is None:
            # The first ratings of an experiment without criteria start a set named after it.
            cset = result.criterion_set = self.experiment
            ops.append((NEW_CRITERION_SET, [cset, cset]))
            ops.append(("UPDATE experiments SET criterion_set = ? WHERE name = ?", [cset, self.experiment]))
            rows = self.reads.execute(
                "SELECT label, position FROM criteria WHERE criterion_set = ?", [cset]
            ).fetchall()
            have = {r[0] for r in rows}
            setup.next_position = max((r[1] for r in rows), default=-1) + 1
            labels = [lb for lb in labels if lb not in have]
        for label in labels:
            ops.append((
                (
                    "INSERT INTO criteria (criterion_set, label, question, kind, position, origin) "
                    "SELECT $1, $2, $3, 'llm', $4, 'ratings' "
                    "WHERE NOT EXISTS (SELECT 1 FROM criteria WHERE criterion_set = $1 AND label = $2)"
                ),
                [cset, label, ADDED_QUESTION, setup.next_position],
            ))
            setup.next_position += 1
        return ops

    def _trial_row(self, it: _Item, rows: dict[str, list[Any]]) -> None:
        t = it.trial
        assert isinstance(t, Trial)
        pre = it.pre
        totals = pre.totals if pre is not None else _totals(t, it.doc) if it.doc is not None else {}
        rows["trial_id"].append(it.trial_id)
        rows["experiment"].append(self.experiment)
        rows["task_name"].append(t.task_name)
        rows["epoch"].append(t.epoch)
        rows["source_trial_id"].append(t.trial_id)
        rows["trajectory_id"].append(it.trajectory_id)
        rows["reward"].append(t.primary_reward())
        rows["rewards"].append(json_or_none(t.reward) if isinstance(t.reward, dict) else None)
        rows["steps"].append(t.steps if t.steps is not None else totals.get("steps"))
        rows["cost_usd"].append(t.cost_usd if t.cost_usd is not None else totals.get("cost_usd"))
        rows["duration_seconds"].append(t.duration_seconds)
        rows["input_tokens"].append(t.input_tokens if t.input_tokens is not None else totals.get("input_tokens"))
        rows["output_tokens"].append(t.output_tokens if t.output_tokens is not None else totals.get("output_tokens"))
        rows["cached_tokens"].append(t.cached_tokens if t.cached_tokens is not None else totals.get("cached_tokens"))
        rows["error"].append(t.error)
        rows["metadata"].append(json_or_none(t.metadata))
        # Messages that are just the trajectory as chat messages are derived again on reading.
        if pre is not None:
            from_trajectory = pre.from_trajectory and it.trajectory_id is not None
        else:
            from_trajectory = (
                t.messages is not None and it.doc is not None and trajectory_messages_equal(t.messages, it.doc)
            )
        rows["messages"].append(
            it.messages_json.decode() if it.messages_json is not None and not from_trajectory else None
        )
        rows["messages_from_trajectory"].append(from_trajectory)
        rows["record_hash"].append(it.record_hash)
        rows["upload_id"].append(self.upload_id)
        rows["raw_id"].append(it.raw_id)
        rows["input_key"].append(it.input_key)
        rows["input_file"].append(it.input_file)
        rows["input_file_key"].append(it.input_file_key)
        # The trajectory's agent and model, kept with the trial so that metrics never read trajectories.
        meta = pre.meta if pre is not None else trajectory_meta(it.doc) if it.doc is not None else None
        rows["agent_name"].append(meta[1] if meta is not None and it.trajectory_id is not None else None)
        rows["model_name"].append(meta[3] if meta is not None and it.trajectory_id is not None else None)


def trajectory_messages_equal(messages: list[dict[str, Any]], doc: dict[str, Any]) -> bool:
    """Whether ``messages`` are exactly what :func:`atif.trial.trajectory_messages` makes of ``doc``."""
    try:
        return messages == trajectory_messages(doc)
    except (TypeError, ValueError, AttributeError):
        return False  # trajectory_messages cannot read this document: the messages are the record's own


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


_META_COLUMNS = ("schema_version", "agent_name", "agent_version", "model_name", "step_count")


def _extend(into: dict[str, list[Any]], rows: dict[str, list[Any]], index: int) -> None:
    """Append one trajectory's flattened rows (made with index 0) as trajectory ``index``."""
    for name, values in rows.items():
        into[name].extend([index] * len(values) if name == "trajectory_id" else values)
