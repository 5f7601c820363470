"""Upload: read trials from converted output, ATIF files or raw runner output, store them in batches.

Inputs, decided per path given:

* a ``*.jsonl`` trials file, or a folder holding ``trials.jsonl`` (the output of ``atif convert``):
  one trial record per line; ``trajectory`` is an inline ATIF object or a path relative to the file;
* an ATIF ``.json`` file, or a folder whose JSON files are all ATIF: one trial per file, its task
  taken from ``extra.task_name`` (or ``extra.task``), else from the name of the file's folder;
* anything else is raw runner output, converted on the fly with :mod:`atif.adapters.convert`.

Identity is content-addressed: a trajectory's id is the sha256 of its canonical JSON (sorted
keys, compact), a trial's id the sha256 of ``[experiment, task, source trial id (else the
trajectory id, else the record hash), epoch]``. A trial key already stored with the same record
is *unchanged*; with a different record it is an error unless ``replace``.

Each batch of trials is written in one transaction, so a crash leaves whole batches only and
re-running the same upload completes it.

Storage: a trajectory's bytes go into ``trajectory_data.raw`` zstd-compressed (``raw_encoding``;
:func:`decode_raw` gives them back verbatim). A record's ``messages`` that are exactly the
trajectory's chat messages (:func:`atif.trial.trajectory_messages`) are not stored but flagged
(``messages_from_trajectory``) and made again on reading; other messages are stored as given.
"""

from __future__ import annotations

import collections
import difflib
import gc
import getpass
import hashlib
import os
import queue
import re
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pydantic
import zstandard

from atif.errors import AtifError, CriteriaError, StoreError
from atif.schema.identity import canonical_json, trajectory_id_of, trial_id_of
from atif.schema.validate import load_json, validate
from atif.store.flatten import flatten, new_buffers
from atif.store.tasks import load_tasks
from atif.trial import Trial, trajectory_messages, trajectory_totals

__all__ = [
    "PRECEDENCE",
    "Ingest",
    "UnmatchedTrial",
    "UploadError",
    "UploadResult",
    "canonical_json",
    "decode_raw",
    "pending_count",
    "trajectory_id_of",
    "trial_id_of",
]

PRECEDENCE: dict[str, int] = {"human": 4, "precomputed": 3, "function": 2, "match": 2, "judge": 1}
"""Rating sources, higher wins: a rating is never overwritten by a lower source."""

ADDED_QUESTION = "(added from pre-computed ratings)"
CANDIDATE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".eval")
MAX_WARNINGS = 1000
_ATIF_MARK = re.compile(rb'"schema_version"\s*:\s*"ATIF-v')
_SNIFF_BYTES = 65536
CHECKPOINT_EVERY = "128MB"
"""DuckDB's checkpoint threshold during an upload (committed data waits in the WAL and in memory until then)."""

RAW_ENCODING = "zstd"
"""How upload stores a trajectory's bytes (``trajectory_data.raw_encoding``).

Trajectories are mostly text and shrink about six times: that much less to write, to keep in
memory until DuckDB checkpoints, and to rewrite at every checkpoint.
"""


def decode_raw(raw: bytes, encoding: str | None) -> bytes:
    """The trajectory bytes as uploaded, from ``trajectory_data.raw`` and ``raw_encoding``."""
    if encoding is None:
        return bytes(raw)
    if encoding == "zstd":
        try:
            return zstandard.ZstdDecompressor().decompress(raw)
        except zstandard.ZstdError as exc:
            raise StoreError(f"a stored trajectory is damaged: {exc}") from None
    raise StoreError(f"a stored trajectory has an unknown encoding {encoding!r}; upgrade atif")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class UploadError:
    """A trial or input that was not stored, and why."""

    file: str
    """The file (``trials.jsonl:12`` for one line of a trials file)."""
    reason: str
    """One line."""


@dataclass(slots=True)
class UnmatchedTrial:
    """A trial whose task is not in the experiment's collection; not stored."""

    file: str
    """Where the trial came from."""
    task_name: str
    """The task name the trial gave."""
    closest: list[str]
    """The most similar task names of the collection, best first (may be empty)."""


@dataclass(slots=True)
class UploadResult:
    """What an upload stored, skipped and rejected."""

    experiment: str
    """The experiment the trials were stored in."""
    collection: str
    """The experiment's collection of tasks."""
    criterion_set: str | None
    """The experiment's criterion set, if it has one."""
    upload_id: str
    """Id of the row in the ``uploads`` table."""
    created_trials: int = 0
    """Trials stored for the first time."""
    unchanged_trials: int = 0
    """Trials already stored with the same record and trajectory (nothing written)."""
    replaced_trials: int = 0
    """Trials stored before with different content, overwritten (``replace=True`` only)."""
    created_ratings: int = 0
    """Pre-computed or human ratings stored from the trial records."""
    created_tasks: int = 0
    """Tasks added to the collection (from a tasks file or from the trials)."""
    pending_evaluations: int = 0
    """Trial x criterion pairs of the experiment with no rating yet (after this upload)."""
    added_criteria: list[str] = field(default_factory=list)
    """Labels found in pre-computed ratings but not in the criterion set; added to it."""
    updated_criteria: list[str] = field(default_factory=list)
    """Criteria whose question, kind or configuration changed; their derived ratings were dropped."""
    unmatched: list[UnmatchedTrial] = field(default_factory=list)
    """Trials whose task is not in the collection (not stored)."""
    errors: list[UploadError] = field(default_factory=list)
    """Inputs and trials that could not be stored."""
    warnings: list[UploadError] = field(default_factory=list)
    """Inputs passed over on purpose and ATIF warnings; nothing was lost."""

    @property
    def ok(self) -> bool:
        """True when every trial found was stored (no error, no unmatched task)."""
        return not self.errors and not self.unmatched

    @property
    def nothing_new(self) -> bool:
        """True when the upload found only trials that were already stored."""
        return self.created_trials == 0 and self.replaced_trials == 0 and self.unchanged_trials > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["ok"] = self.ok
        return d


# ---------------------------------------------------------------------------------------------
# Reading inputs
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    file: str
    trial: Trial
    explicit_epoch: bool
    doc: dict[str, Any] | None = None
    raw: bytes | None = None
    canonical: bytes | None = None
    traj_file: str | None = None
    base_dir: Path | str | None = None
    validated: bool = False
    trajectory_id: str | None = None
    trial_id: str = ""
    record_hash: str = ""
    messages_json: bytes | None = None


@dataclass(slots=True)
class _Problem:
    file: str
    reason: str
    warning: bool = False


def _pydantic_reason(exc: pydantic.ValidationError) -> str:
    errs = exc.errors(include_url=False)
    parts = []
    for err in errs:
        loc = "/" + "/".join(str(p) for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(parts) - 1} more)" if len(parts) > 1 else ""
    return parts[0] + more


def _issue_reason(issues: list[Any]) -> str:
    first = issues[0]
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{first.path or '/'}: [{first.code}] {first.message}{more}"


def _join(base_name: str, base: Path, rel: str) -> str:
    """``str(base / rel)``; plain string joining where it gives the same (most paths), as pathlib costs."""
    if os.path.isabs(rel):
        return str(Path(rel))
    if os.sep != "/" or base_name == "/" or rel.startswith(".") or "/." in rel or "//" in rel or rel.endswith("/"):
        return str(base / rel)
    return base_name + "/" + rel if base_name != "." else rel


def _looks_atif(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    return _ATIF_MARK.search(head) is not None


def _looks_like_trials(path: Path) -> bool:
    if path.name == "trials.jsonl":
        return True
    try:
        with open(path, "rb") as f:
            for n, line in enumerate(f):
                if n >= 5:
                    break
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and "task_name" in obj:
                    return True
    except OSError:
        return False
    return False


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _atif_dir_files(root: Path) -> list[Path] | None:
    """The ATIF files of a folder, or None when it holds any other JSON-like file (or none at all)."""
    found = []
    for p in _walk(root):
        suffix = p.suffix.lower()
        if suffix not in CANDIDATE_SUFFIXES:
            continue
        if suffix != ".json" or not _looks_atif(p):
            return None
        found.append(p)
    return found or None


class _Reader:
    """Turns the paths given to ``upload`` into trial items, one at a time."""

    def __init__(self) -> None:
        self.instructions: dict[str, str] = {}

    def items(self, sources: Iterable[Path]) -> Iterator[_Item | _Problem]:
        for src in sources:
            path = Path(src)
            if not path.exists():
                yield _Problem(str(path), "no such file or directory")
            elif path.is_dir():
                if (path / "trials.jsonl").is_file():
                    yield from self.trials_file(path / "trials.jsonl")
                else:
                    files = _atif_dir_files(path)
                    if files is not None:
                        for f in files:
                            yield self.atif_file(f)
                    else:
                        yield from self.raw(path)
            elif path.suffix.lower() in (".jsonl", ".ndjson") and _looks_like_trials(path):
                yield from self.trials_file(path)
            elif path.suffix.lower() == ".json" and _looks_atif(path):
                yield self.atif_file(path)
            else:
                yield from self.raw(path)

    def _task_hints(self, trials_path: Path) -> None:
        # `atif convert` writes the tasks' instructions beside the trials.
        tasks_path = trials_path.parent / "tasks.jsonl"
        if not tasks_path.is_file():
            return
        try:
            for spec in load_tasks(tasks_path):
                if spec.instruction:
                    self.instructions.setdefault(spec.name, spec.instruction)
        except CriteriaError:
            pass

    def trials_file(self, path: Path) -> Iterator[_Item | _Problem]:
        self._task_hints(path)
        base = path.parent
        base_name = str(base)
        try:
            lines = path.open("rb")
        except OSError as exc:
            yield _Problem(str(path), f"cannot read: {exc.strerror or exc}")
            return
        with lines:
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield _Problem(where, f"line {n} is not valid JSON: {exc.msg} (column {exc.colno})")
                    continue
                if not isinstance(obj, dict):
                    yield _Problem(where, f"line {n} is not a JSON object (a trial record)")
                    continue
                traj = obj.pop("trajectory", None)
                # A conversation is often as big as the trajectory: check its shape here rather than
                # have pydantic copy every message (anything unusual is left to pydantic to report).
                messages = obj.get("messages")
                if type(messages) is list and all(type(m) is dict for m in messages):
                    del obj["messages"]
                else:
                    messages = None
                try:
                    trial = Trial.model_validate(obj)
                except pydantic.ValidationError as exc:
                    yield _Problem(where, f"invalid trial record: {_pydantic_reason(exc)}")
                    continue
                if messages is not None:
                    trial.messages = messages
                item = _Item(where, trial, "epoch" in obj)
                if traj is None:
                    yield item
                elif isinstance(traj, dict):
                    item.doc = traj
                    item.canonical = item.raw = canonical_json(traj)
                    item.base_dir = base
                    yield item
                elif isinstance(traj, str) and traj:
                    tpath = _join(base_name, base, traj)
                    try:
                        with open(tpath, "rb") as f:
                            raw = f.read()
                    except FileNotFoundError:
                        yield _Problem(where, f"trajectory file {traj} not found (looked at {tpath})")
                        continue
                    except OSError as exc:
                        yield _Problem(where, f"cannot read trajectory file {tpath}: {exc.strerror or exc}")
                        continue
                    doc, issues = load_json(raw, source=tpath)
                    if any(i.severity == "error" for i in issues):
                        yield _Problem(tpath, _issue_reason(issues))
                        continue
                    if not isinstance(doc, dict):
                        yield _Problem(tpath, "/: [json.not-object] expected an ATIF trajectory object")
                        continue
                    item.doc, item.raw, item.traj_file, item.base_dir = doc, raw, tpath, os.path.dirname(tpath)
                    yield item
                else:
                    yield _Problem(where, "`trajectory` must be an ATIF object or a path to one")

    def atif_file(self, path: Path) -> _Item | _Problem:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return _Problem(str(path), f"cannot read: {exc.strerror or exc}")
        doc, issues = load_json(raw, source=str(path))
        if any(i.severity == "error" for i in issues):
            return _Problem(str(path), _issue_reason(issues))
        if not isinstance(doc, dict):
            return _Problem(str(path), "/: [json.not-object] expected an ATIF trajectory object")
        extra_value = doc.get("extra")
        extra: dict[str, Any] = extra_value if isinstance(extra_value, dict) else {}
        task = extra.get("task_name") or extra.get("task")
        if not isinstance(task, str) or not task:
            task = path.parent.name or path.stem
        record: dict[str, Any] = {"task_name": task, "metadata": {"source_format": "atif"}}
        if isinstance(extra.get("trial_id"), str):
            record["trial_id"] = extra["trial_id"]
        try:
            totals = trajectory_totals(doc)
        except (TypeError, ValueError, AttributeError):
            totals = {}  # a malformed trajectory; validation names the problem
        record.update({k: v for k, v in totals.items() if v is not None})
        try:
            trial = Trial.model_validate(record)
        except pydantic.ValidationError as exc:
            return _Problem(str(path), f"cannot build a trial from this trajectory: {_pydantic_reason(exc)}")
        return _Item(str(path), trial, False, doc=doc, raw=raw, traj_file=str(path), base_dir=path.parent)

    def raw(self, path: Path) -> Iterator[_Item | _Problem]:
        try:
            from atif.adapters.base import Failure
            from atif.adapters.convert import iter_convert
        except ImportError as exc:
            yield _Problem(str(path), f"not converted output or ATIF, and the adapters cannot load: {exc}")
            return
        try:
            for r in iter_convert([path]):
                if isinstance(r, Failure):
                    yield _Problem(r.source, r.reason, warning=r.skipped)
                    continue
                trial = r.trial
                if r.instruction:
                    self.instructions.setdefault(trial.task_name, r.instruction)
                item = _Item(r.source, trial, "epoch" in trial.model_fields_set, validated=True)
                if trial.trajectory is not None:
                    trial = trial.model_copy(update={"trajectory": None})
                    item.trial = trial
                if r.trajectory is not None:
                    item.doc = r.trajectory
                    item.canonical = item.raw = canonical_json(r.trajectory)
                for w in r.warnings:
                    yield _Problem(r.source, w, warning=True)
                yield item
        except AtifError as exc:
            yield _Problem(str(path), str(exc))


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _arrow_schemas() -> dict[str, Any]:
    import pyarrow as pa

    s, i32, i64, f64, b = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
    return {
        "trajectory_data": pa.schema(
            [("trajectory_id", s), ("raw", pa.binary()), ("raw_encoding", s), ("schema_version", s),
             ("agent_name", s), ("agent_version", s), ("model_name", s), ("step_count", i32), ("n_bytes", i64)]
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
             ("upload_id", s)]
        ),
        "rating_data": pa.schema(
            [("trial_id", s), ("criterion", s), ("verdict", s), ("reasoning", s), ("cited_steps", pa.list_(i32)),
             ("source", s)]
        ),
    }


_SCHEMAS: dict[str, Any] = {}


def _arrow(table: str, columns: dict[str, list[Any]], keys: list[str] | None = None) -> Any:
    """Column buffers as an Arrow table of the target table's schema (None when empty).

    With ``keys``, the ``trajectory_id`` column holds indexes into ``keys`` and becomes a
    dictionary array: one string per trajectory instead of one per step or call.
    """
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


def _insert(db: duckdb.DuckDBPyConnection, table: str, batch: Any, derived: dict[str, str] | None = None) -> None:
    """Bulk insert an Arrow table (one scan instead of a round trip per row).

    ``derived`` maps further target columns to SQL expressions over the Arrow columns.
    """
    if batch is None:
        return
    names = batch.schema.names
    targets = list(names) + list(derived or {})
    exprs = list(names) + list((derived or {}).values())
    db.register("_atif_batch", batch)
    try:
        db.execute(f"INSERT INTO {table} ({', '.join(targets)}) SELECT {', '.join(exprs)} FROM _atif_batch")
    finally:
        db.unregister("_atif_batch")


def _criteria_spec(criteria: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None]:
    """Check the criterion-set data handed to ``upload``: ``{name, criteria: [...], judge: {...}}``."""
    if not isinstance(criteria, dict):
        raise CriteriaError("criteria: expected a mapping with `name` and `criteria`")
    name = criteria.get("name")
    if not isinstance(name, str) or not name:
        raise CriteriaError("criteria: `name` (the criterion set) must be a non-empty string")
    items = criteria.get("criteria")
    if not isinstance(items, list) or not items:
        raise CriteriaError(f"criteria {name!r}: `criteria` must be a non-empty list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, c in enumerate(items):
        if not isinstance(c, dict):
            raise CriteriaError(f"criteria {name!r}: criterion {i + 1} is not a mapping")
        label, question, kind = c.get("label"), c.get("question"), c.get("kind", "llm")
        if not isinstance(label, str) or not label:
            raise CriteriaError(f"criteria {name!r}: criterion {i + 1} has no label")
        if label in seen:
            raise CriteriaError(f"criteria {name!r}: duplicate label {label!r}")
        seen.add(label)
        if not isinstance(question, str) or not question:
            raise CriteriaError(f"criteria {name!r}: criterion {label!r} has no question")
        if kind not in ("llm", "function", "match"):
            raise CriteriaError(f"criteria {name!r}: criterion {label!r} has unknown kind {kind!r}")
        out.append({"label": label, "question": question, "kind": kind, "config": c.get("config") or {}})
    judge = criteria.get("judge")
    if judge is not None and not isinstance(judge, dict):
        raise CriteriaError(f"criteria {name!r}: `judge` must be a mapping")
    return name, out, judge


def _json_or_none(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


class Ingest:
    """One upload into an open read-write connection (used by :meth:`atif.store.Store.upload`)."""

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
        progress: bool = False,
    ) -> None:
        if not isinstance(experiment, str) or not experiment.strip():
            raise StoreError("an experiment name is required")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
            raise StoreError(f"epoch must be a whole number >= 1, got {epoch!r}")
        if batch_size < 1:
            raise StoreError(f"batch_size must be >= 1, got {batch_size}")
        self.db = db
        self.experiment = experiment
        self.collection_arg = collection
        self.criteria = _criteria_spec(criteria) if criteria is not None else None
        self.tasks = load_tasks(tasks_file) if tasks_file is not None else None
        self.epoch = epoch
        self.create_missing = create_missing_tasks
        self.replace = replace
        self.batch_size = batch_size
        self.progress = progress
        self.upload_id = uuid.uuid4().hex
        self.reader = _Reader()
        # Trial key -> record hash of trials met in batches not yet committed; older ones are found
        # in the database, which keeps memory bounded by the batch size, not the input size.
        self.seen: dict[bytes, bytes] = {}
        self.seen_batches: collections.deque[tuple[int, list[bytes]]] = collections.deque()
        self.batches_made = 0
        self.batches_committed = 0
        self.closest_cache: dict[str, list[str]] = {}
        self.criterion_labels: set[str] = set()
        self.next_position = 0
        self.writer_tids: set[str] = set()

    # -- setup, in one transaction before the first batch ------------------------------------
    def _setup(self, sources: list[str]) -> UploadResult:
        db = self.db
        row = db.execute(
            "SELECT collection, criterion_set FROM experiments WHERE name = ?", [self.experiment]
        ).fetchone()
        if row is not None:
            collection, cset = row
            if self.collection_arg is not None and self.collection_arg != collection:
                raise StoreError(
                    f"experiment {self.experiment!r} uses collection {collection!r}, not {self.collection_arg!r}"
                )
        else:
            collection, cset = self.collection_arg or self.experiment, None
        if self.criteria is not None and cset is not None and cset != self.criteria[0]:
            raise StoreError(
                f"experiment {self.experiment!r} uses criterion set {cset!r}, not {self.criteria[0]!r}"
            )
        result = UploadResult(self.experiment, collection, cset, self.upload_id)

        coll_row = db.execute(
            "SELECT c.created_by_upload, u.finished_at IS NULL AND u.upload_id IS NOT NULL "
            "FROM collections c LEFT JOIN uploads u ON u.upload_id = c.created_by_upload WHERE c.name = ?",
            [collection],
        ).fetchone()
        if coll_row is None:
            # A new collection takes its tasks from the tasks file, or else from the trials.
            self.tasks_from_trials = self.tasks is None
            db.execute(
                "INSERT INTO collections (name, created_by_upload) VALUES (?, ?)",
                [collection, self.upload_id if self.tasks_from_trials else None],
            )
        else:
            # An interrupted upload that was building the collection from its trials is resumed as such.
            self.tasks_from_trials = bool(coll_row[1]) and self.tasks is None
            if self.tasks_from_trials:
                db.execute("UPDATE collections SET created_by_upload = ? WHERE name = ?", [self.upload_id, collection])

        if self.tasks is not None:
            existing = {
                r[0]: (r[1], tuple(r[2] or ()))
                for r in db.execute("SELECT name, instruction, tags FROM tasks WHERE collection = ?", [collection]).fetchall()
            }
            for t in self.tasks:
                if t.name not in existing:
                    db.execute(
                        "INSERT INTO tasks (collection, name, instruction, tags) VALUES (?, ?, ?, ?)",
                        [collection, t.name, t.instruction, list(t.tags)],
                    )
                    result.created_tasks += 1
                elif existing[t.name] != (t.instruction, t.tags):
                    db.execute(
                        "UPDATE tasks SET instruction = ?, tags = ? WHERE collection = ? AND name = ?",
                        [t.instruction, list(t.tags), collection, t.name],
                    )

        judge_config = None
        if self.criteria is not None:
            cset, items, judge_config = self.criteria
            self._upsert_criteria(cset, items, result)
        if row is None:
            db.execute(
                "INSERT INTO experiments (name, collection, criterion_set, judge_config) VALUES (?, ?, ?, ?)",
                [self.experiment, collection, cset, _json_or_none(judge_config)],
            )
        elif self.criteria is not None:
            db.execute(
                "UPDATE experiments SET criterion_set = ?, judge_config = ? WHERE name = ?",
                [cset, _json_or_none(judge_config), self.experiment],
            )
        result.criterion_set = cset
        if cset is not None:
            self._load_labels(cset)
        db.execute(
            "INSERT INTO uploads (upload_id, experiment, started_at, user_name, host, sources) "
            "VALUES (?, ?, current_timestamp, ?, ?, ?)",
            [self.upload_id, self.experiment, _user(), socket.gethostname(), _json_or_none(sources)],
        )
        self.collection = collection
        self.known_tasks = {
            r[0] for r in db.execute("SELECT name FROM tasks WHERE collection = ?", [collection]).fetchall()
        }
        return result

    def _load_labels(self, cset: str) -> None:
        rows = self.db.execute(
            "SELECT label, position FROM criteria WHERE criterion_set = ?", [cset]
        ).fetchall()
        self.criterion_labels = {r[0] for r in rows}
        self.next_position = max((r[1] for r in rows), default=-1) + 1

    def _upsert_criteria(self, cset: str, items: list[dict[str, Any]], result: UploadResult) -> None:
        db = self.db
        db.execute("INSERT INTO criterion_sets (name) VALUES (?) ON CONFLICT DO NOTHING", [cset])
        existing = {
            r[0]: (r[1], r[2], orjson.loads(r[3]) if r[3] else {}, r[4], r[5])
            for r in db.execute(
                "SELECT label, question, kind, config, position, origin FROM criteria WHERE criterion_set = ?", [cset]
            ).fetchall()
        }
        position = max((v[3] for v in existing.values()), default=-1) + 1
        for c in items:
            old = existing.get(c["label"])
            config = _json_or_none(c["config"])
            if old is None:
                db.execute(
                    "INSERT INTO criteria (criterion_set, label, question, kind, config, position) VALUES (?, ?, ?, ?, ?, ?)",
                    [cset, c["label"], c["question"], c["kind"], config, position],
                )
                position += 1
                continue
            if (old[0], old[1], old[2]) == (c["question"], c["kind"], c["config"]) and old[4] == "file":
                continue
            db.execute(
                "UPDATE criteria SET question = ?, kind = ?, config = ?, origin = 'file' "
                "WHERE criterion_set = ? AND label = ?",
                [c["question"], c["kind"], config, cset, c["label"]],
            )
            if old[4] == "file":
                # Stored verdicts answer the old question: drop the derived ones so they are judged again.
                db.execute(
                    "DELETE FROM rating_data WHERE criterion = ? AND source IN ('judge', 'function', 'match') "
                    "AND trial_id IN (SELECT t.trial_id FROM trial_data t JOIN experiments e ON e.name = t.experiment "
                    "WHERE e.criterion_set = ?)",
                    [c["label"], cset],
                )
                result.updated_criteria.append(c["label"])

    # -- the loop ----------------------------------------------------------------------------
    def run(self, sources: list[Path]) -> UploadResult:
        """Store every trial found in ``sources``; see the module docstring.

        The calling thread reads, validates and flattens batch k+1 while a writer thread
        commits batch k: DuckDB releases the GIL, so its work overlaps the Python work.
        """
        db = self.db
        db.execute("BEGIN TRANSACTION")
        try:
            result = self._setup([str(s) for s in sources])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.result = result
        # DuckDB checkpoints whenever the WAL passes the threshold (16 MiB by default), rewriting the
        # tables' last, partly filled row groups each time: during an upload that is most of the
        # cost of a commit. Checkpoints every CHECKPOINT_EVERY instead, and once at the end.
        threshold = db.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        db.execute(f"SET checkpoint_threshold = '{CHECKPOINT_EVERY}'")
        # Parsed trajectories and records are large trees of dicts and lists that die by reference
        # counting; the cycle collector would only traverse them again and again (about a tenth
        # of the upload's time). It is switched back on however the upload ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(sources, result, threshold[0] if threshold else None)
        finally:
            if collecting:
                gc.enable()
            if threshold:
                db.execute(f"SET checkpoint_threshold = '{threshold[0]}'")

    def _run(self, sources: list[Path], result: UploadResult, threshold: str | None) -> UploadResult:
        db = self.db
        self.reads = db.cursor()  # this thread's own connection while the writer owns `db`
        writer = _Writer(self)
        bar = _progress_bar(self.progress)
        batch: list[_Item] = []
        done = 0
        try:
            for got in self.reader.items(sources):
                if isinstance(got, _Problem):
                    if got.warning:
                        if len(result.warnings) < MAX_WARNINGS:
                            result.warnings.append(UploadError(got.file, got.reason))
                    else:
                        result.errors.append(UploadError(got.file, got.reason))
                    continue
                self._identify(got)
                batch.append(got)
                if len(batch) >= self.batch_size:
                    writer.put(self._prepare(batch))
                    done += len(batch)
                    batch = []
                    if bar is not None:
                        bar.update(done)
            if batch:
                writer.put(self._prepare(batch))
        finally:
            writer.close()
            self.reads.close()
            if bar is not None:
                bar.close()
        result.created_ratings = writer.ratings
        if result.criterion_set is not None:
            result.pending_evaluations = pending_count(db, self.experiment)
        if threshold is not None:
            db.execute(f"SET checkpoint_threshold = '{threshold}'")  # the next commit checkpoints what is left
        db.execute(
            "UPDATE uploads SET finished_at = current_timestamp, created_trials = ?, unchanged_trials = ?, "
            "replaced_trials = ?, created_ratings = ?, n_errors = ?, errors = ? WHERE upload_id = ?",
            [result.created_trials, result.unchanged_trials, result.replaced_trials, result.created_ratings,
             len(result.errors) + len(result.unmatched),
             _json_or_none([asdict(e) for e in result.errors] + [asdict(u) for u in result.unmatched]),
             self.upload_id],
        )
        return result

    def _identify(self, item: _Item) -> None:
        trial = item.trial
        if self.epoch is not None and not item.explicit_epoch:
            trial.epoch = self.epoch
        if item.doc is not None:
            if item.canonical is None:
                item.canonical = canonical_json(item.doc)
            item.trajectory_id = hashlib.sha256(item.canonical).hexdigest()
            item.canonical = None  # only the hash was needed; keep memory bounded by the raw bytes
        # The conversation is often as big as the trajectory: serialise it once, canonically, for
        # both the hash and the stored column, instead of through the model's serializer.
        messages = canonical_json(trial.messages) if trial.messages is not None else b"null"
        item.messages_json = messages if trial.messages is not None else None
        record = trial.model_dump(mode="json", exclude={"messages"})
        record["trajectory"] = item.trajectory_id
        h = hashlib.sha256(canonical_json(record))
        h.update(b"\x00")
        h.update(messages)
        item.record_hash = h.hexdigest()
        source_key = trial.trial_id or item.trajectory_id or item.record_hash
        item.trial_id = trial_id_of(self.experiment, trial.task_name, source_key, trial.epoch)

    def _closest(self, name: str) -> list[str]:
        hit = self.closest_cache.get(name)
        if hit is None:
            hit = difflib.get_close_matches(name, sorted(self.known_tasks), n=3, cutoff=0.5)
            self.closest_cache[name] = hit
        return hit

    def _prepare(self, batch: list[_Item]) -> _Batch:
        """Classify, validate and flatten one batch; return what the writer must do with it."""
        reads, result = self.reads, self.result
        while self.seen_batches and self.seen_batches[0][0] <= self.batches_committed:
            for key in self.seen_batches.popleft()[1]:
                self.seen.pop(key, None)
        self.batches_made += 1
        keys: list[bytes] = []
        self.seen_batches.append((self.batches_made, keys))
        ids = [it.trial_id for it in batch]
        existing = dict(
            reads.execute(
                "SELECT trial_id, record_hash FROM trial_data WHERE trial_id IN ?", [ids]
            ).fetchall()
        )
        new_tasks: dict[str, str | None] = {}
        to_store: list[_Item] = []
        replaced: list[str] = []
        for it in batch:
            task = it.trial.task_name
            if task not in self.known_tasks and task not in new_tasks:
                if self.create_missing or self.tasks_from_trials:
                    new_tasks[task] = self.reader.instructions.get(task)
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
        in_flight = set(self.writer_tids)
        known = {
            r[0]
            for r in reads.execute(
                "SELECT trajectory_id FROM trajectory_data WHERE trajectory_id IN ?", [tids]
            ).fetchall()
        } if tids else set()
        known.update(t for t in tids if t in in_flight)
        checked: dict[str, str | None] = {}
        final: list[_Item] = []
        for it in to_store:
            tid = it.trajectory_id
            if tid is not None and tid not in known and not it.validated:
                if tid not in checked:
                    report = validate(it.doc, mode="strict", base_dir=it.base_dir)
                    errs = report.errors
                    checked[tid] = _issue_reason(errs) if errs else None
                    if len(result.warnings) < MAX_WARNINGS:
                        result.warnings.extend(
                            UploadError(it.traj_file or it.file, f"{w.path or '/'}: [{w.code}] {w.message}")
                            for w in report.warnings
                        )
                if checked[tid] is not None:
                    result.errors.append(UploadError(it.traj_file or it.file, f"invalid ATIF: {checked[tid]}"))
                    self.seen.pop(bytes.fromhex(it.trial_id), None)
                    if it.trial_id in replaced:
                        replaced.remove(it.trial_id)
                    continue
            final.append(it)
        return self._build(final, known, new_tasks, replaced)

    def _build(
        self, items: list[_Item], known: set[str], new_tasks: dict[str, str | None], replaced: list[str]
    ) -> _Batch:
        result = self.result
        traj: dict[str, list[Any]] = {n: [] for n in _TRAJECTORY_COLUMNS}
        steps, calls = new_buffers()
        trials: dict[str, list[Any]] = {n: [] for n in _TRIAL_COLUMNS}
        ratings: dict[str, list[Any]] = {n: [] for n in _RATING_COLUMNS}
        written: set[str] = set()
        new_labels: list[str] = []
        for it in items:
            doc = it.doc
            tid = it.trajectory_id
            if doc is not None and tid is not None and tid not in known and tid not in written:
                written.add(tid)
                agent_value = doc.get("agent")
                agent: dict[str, Any] = agent_value if isinstance(agent_value, dict) else {}
                traj["trajectory_id"].append(tid)
                traj["raw"].append(it.raw)
                traj["raw_encoding"].append(RAW_ENCODING)
                traj["schema_version"].append(_str(doc.get("schema_version")))
                traj["agent_name"].append(_str(agent.get("name")))
                traj["agent_version"].append(_str(agent.get("version")))
                traj["model_name"].append(_str(agent.get("model_name")))
                s = doc.get("steps")
                traj["step_count"].append(len(s) if isinstance(s, list) else None)
                traj["n_bytes"].append(len(it.raw) if it.raw is not None else None)
                flatten(doc, len(traj["trajectory_id"]) - 1, steps, calls)
            self._trial_row(it, trials)
            if it.trial.criterion_ratings:
                best: dict[str, Any] = {}
                for r in it.trial.criterion_ratings:
                    cur = best.get(r.criterion)
                    if cur is None or PRECEDENCE[r.source] >= PRECEDENCE[cur.source]:
                        best[r.criterion] = r
                for label, r in best.items():
                    if label not in self.criterion_labels:
                        self.criterion_labels.add(label)
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
                    "INSERT INTO tasks (collection, name, instruction) "
                    "SELECT ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]) ON CONFLICT DO NOTHING"
                ),
                [self.collection, list(new_tasks), list(new_tasks.values())],
            ))
            self.known_tasks.update(new_tasks)
        if new_labels:
            ops.extend(self._label_ops(new_labels))
        created = len(items) - len(replaced)
        result.created_tasks += len(new_tasks)
        result.created_trials += created
        result.replaced_trials += len(replaced)
        result.added_criteria.extend(new_labels)
        self.writer_tids.update(written)
        return _Batch(
            tables={
                # Compressed and made Arrow by the writer: zstd releases the GIL, so it overlaps this thread.
                "trajectory_data": traj if traj["trajectory_id"] else None,
                "step_data": _arrow("step_data", steps, traj["trajectory_id"]),
                "tool_call_data": _arrow("tool_call_data", calls, traj["trajectory_id"]),
                "trial_data": _arrow("trial_data", trials),
                "rating_data": _arrow("rating_data", ratings),
            },
            ops=ops,
            replaced=sorted(replaced),
            in_use=written | {it.trajectory_id for it in items if it.trajectory_id},
            created=created,
            tids=written,
        )

    def _label_ops(self, labels: list[str]) -> list[tuple[str, list[Any]]]:
        result = self.result
        ops: list[tuple[str, list[Any]]] = []
        cset = result.criterion_set
        if cset is None:
            # The first ratings of an experiment without criteria start a set named after it.
            cset = result.criterion_set = self.experiment
            ops.append(("INSERT INTO criterion_sets (name) VALUES (?) ON CONFLICT DO NOTHING", [cset]))
            ops.append(("UPDATE experiments SET criterion_set = ? WHERE name = ?", [cset, self.experiment]))
            rows = self.reads.execute(
                "SELECT label, position FROM criteria WHERE criterion_set = ?", [cset]
            ).fetchall()
            have = {r[0] for r in rows}
            self.next_position = max((r[1] for r in rows), default=-1) + 1
            labels = [lb for lb in labels if lb not in have]
        for label in labels:
            ops.append((
                (
                    "INSERT INTO criteria (criterion_set, label, question, kind, position, origin) "
                    "VALUES (?, ?, ?, 'llm', ?, 'ratings')"
                ),
                [cset, label, ADDED_QUESTION, self.next_position],
            ))
            self.next_position += 1
        return ops

    def _trial_row(self, it: _Item, rows: dict[str, list[Any]]) -> None:
        t = it.trial
        totals: dict[str, Any] = {}
        if it.doc is not None and None in (t.steps, t.cost_usd, t.input_tokens, t.output_tokens, t.cached_tokens):
            try:
                totals = trajectory_totals(it.doc)
            except (TypeError, ValueError, AttributeError):
                totals = {}
        rows["trial_id"].append(it.trial_id)
        rows["experiment"].append(self.experiment)
        rows["task_name"].append(t.task_name)
        rows["epoch"].append(t.epoch)
        rows["source_trial_id"].append(t.trial_id)
        rows["trajectory_id"].append(it.trajectory_id)
        rows["reward"].append(t.primary_reward())
        rows["rewards"].append(_json_or_none(t.reward) if isinstance(t.reward, dict) else None)
        rows["steps"].append(t.steps if t.steps is not None else totals.get("steps"))
        rows["cost_usd"].append(t.cost_usd if t.cost_usd is not None else totals.get("cost_usd"))
        rows["duration_seconds"].append(t.duration_seconds)
        rows["input_tokens"].append(t.input_tokens if t.input_tokens is not None else totals.get("input_tokens"))
        rows["output_tokens"].append(t.output_tokens if t.output_tokens is not None else totals.get("output_tokens"))
        rows["cached_tokens"].append(t.cached_tokens if t.cached_tokens is not None else totals.get("cached_tokens"))
        rows["error"].append(t.error)
        rows["metadata"].append(_json_or_none(t.metadata))
        # Messages that are just the trajectory as chat messages are derived again on reading.
        from_trajectory = (
            t.messages is not None and it.doc is not None and _trajectory_messages_equal(t.messages, it.doc)
        )
        rows["messages"].append(
            it.messages_json.decode() if it.messages_json is not None and not from_trajectory else None
        )
        rows["messages_from_trajectory"].append(from_trajectory)
        rows["record_hash"].append(it.record_hash)
        rows["upload_id"].append(self.upload_id)


@dataclass(slots=True)
class _Batch:
    """Everything one transaction writes: Arrow tables, statements to run first, trials to replace."""

    tables: dict[str, Any]
    ops: list[tuple[str, list[Any]]]
    replaced: list[str]
    in_use: set[str]
    created: int
    tids: set[str]


class _Writer:
    """Commits prepared batches on its own thread, one transaction each, in order."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.db = ingest.db
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.zstd = zstandard.ZstdCompressor(level=3)
        self.ratings = 0
        self.created = 0
        self.replaced = 0
        self.thread = threading.Thread(target=self._loop, name="atif-upload-writer", daemon=True)
        self.thread.start()

    def put(self, batch: _Batch) -> None:
        """Hand a batch over (waits while the previous one is still queued); re-raise a writer failure."""
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
                self.ingest.batches_committed += 1
            except BaseException as exc:  # noqa: BLE001  # re-raised in the producing thread
                self.error = exc
            finally:
                self.ingest.writer_tids.difference_update(batch.tids)

    def _commit(self, b: _Batch) -> None:
        db = self.db
        traj = b.tables["trajectory_data"]
        if traj is not None:
            # One call for the batch: the GIL is released once, not once per trajectory (each
            # re-acquisition can wait a whole switch interval while the reading thread runs).
            frames = self.zstd.multi_compress_to_buffer(traj["raw"], threads=1)
            traj["raw"] = [frames[i].tobytes() for i in range(len(frames))]
            traj = _arrow("trajectory_data", traj)
        db.execute("BEGIN TRANSACTION")
        try:
            if b.replaced:
                self._clear_replaced(b.replaced, b.in_use)
            for sql, params in b.ops:
                db.execute(sql, params)
            if traj is not None:
                _insert(db, "trajectory_data", traj)
            _insert(db, "step_data", b.tables["step_data"], {"ts": "TRY_CAST(timestamp AS TIMESTAMPTZ)"})
            _insert(db, "tool_call_data", b.tables["tool_call_data"])
            _insert(db, "trial_data", b.tables["trial_data"])
            ratings = b.tables["rating_data"]
            n_ratings = 0
            if ratings is not None:
                db.register("_atif_ratings", ratings)
                try:
                    # A human rating in the record replaces a kept human rating; nothing else is overwritten.
                    db.execute(
                        "DELETE FROM rating_data r USING _atif_ratings b WHERE r.trial_id = b.trial_id "
                        "AND r.criterion = b.criterion AND b.source = 'human'"
                    )
                    inserted = db.execute(
                        f"INSERT INTO rating_data ({', '.join(_RATING_COLUMNS)}) SELECT b.* FROM _atif_ratings b "
                        "WHERE NOT EXISTS (SELECT 1 FROM rating_data r WHERE r.trial_id = b.trial_id "
                        "AND r.criterion = b.criterion)"
                    ).fetchone()
                    n_ratings = int(inserted[0]) if inserted else 0
                finally:
                    db.unregister("_atif_ratings")
            self.created += b.created
            self.replaced += len(b.replaced)
            self.ratings += n_ratings
            db.execute(
                "UPDATE uploads SET created_trials = ?, unchanged_trials = ?, replaced_trials = ?, "
                "created_ratings = ? WHERE upload_id = ?",
                [self.created, self.ingest.result.unchanged_trials, self.replaced, self.ratings,
                 self.ingest.upload_id],
            )
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise

    def _clear_replaced(self, ids: list[str], in_use: set[str]) -> None:
        db = self.db
        old_tids = [r[0] for r in db.execute(
            "SELECT DISTINCT trajectory_id FROM trial_data WHERE trial_id IN ? "
            "AND trajectory_id IS NOT NULL", [ids]).fetchall()]
        # Human ratings survive a replace; everything derived from the old content goes.
        db.execute("DELETE FROM rating_data WHERE source <> 'human' AND trial_id IN ?", [ids])
        db.execute("DELETE FROM trial_data WHERE trial_id IN ?", [ids])
        if old_tids:
            # A trajectory no trial refers to any more is dropped with its flattened rows.
            orphans = [r[0] for r in db.execute(
                "SELECT unnest(?::VARCHAR[]) AS tid EXCEPT SELECT trajectory_id FROM trial_data", [old_tids]
            ).fetchall() if r[0] not in in_use]
            if orphans:
                for table in ("tool_call_data", "step_data", "trajectory_data"):
                    db.execute(f"DELETE FROM {table} WHERE trajectory_id IN ?", [orphans])


_TRAJECTORY_COLUMNS = (
    "trajectory_id", "raw", "raw_encoding", "schema_version", "agent_name", "agent_version", "model_name",
    "step_count", "n_bytes",
)
_TRIAL_COLUMNS = (
    "trial_id", "experiment", "task_name", "epoch", "source_trial_id", "trajectory_id", "reward", "rewards",
    "steps", "cost_usd", "duration_seconds", "input_tokens", "output_tokens", "cached_tokens", "error",
    "metadata", "messages", "messages_from_trajectory", "record_hash", "upload_id",
)
_RATING_COLUMNS = ("trial_id", "criterion", "verdict", "reasoning", "cited_steps", "source")


def _trajectory_messages_equal(messages: list[dict[str, Any]], doc: dict[str, Any]) -> bool:
    """Whether ``messages`` are exactly what :func:`atif.trial.trajectory_messages` makes of ``doc``."""
    try:
        return messages == trajectory_messages(doc)
    except (TypeError, ValueError, AttributeError):
        return False  # trajectory_messages cannot read this document: the messages are the record's own


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def pending_count(db: duckdb.DuckDBPyConnection, experiment: str) -> int:
    """Trial x criterion pairs of an experiment with no rating yet."""
    row = db.execute(
        """
        SELECT count(*) FROM trial_data t
        JOIN experiments e ON e.name = t.experiment
        JOIN criteria c ON c.criterion_set = e.criterion_set AND c.origin = 'file'
        LEFT JOIN rating_data r ON r.trial_id = t.trial_id AND r.criterion = c.label
        WHERE t.experiment = ? AND r.trial_id IS NULL
        """,
        [experiment],
    ).fetchone()
    return int(row[0]) if row else 0


class _Bar:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.p = Progress(
            SpinnerColumn(), TextColumn("uploading: {task.completed} trials"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        self.p.start()
        self.task = self.p.add_task("upload", total=None)

    def update(self, done: int) -> None:
        self.p.update(self.task, completed=done)

    def close(self) -> None:
        self.p.stop()


def _progress_bar(enabled: bool) -> _Bar | None:
    return _Bar() if enabled else None

