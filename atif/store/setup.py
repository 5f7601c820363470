"""What an upload writes before its trials: the experiment, its collection and tasks, its criterion set.

All of it in the caller's transaction, so an upload either starts with a consistent experiment
or not at all.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from atif.errors import CriteriaError, StoreError
from atif.store.results import UploadResult
from atif.store.tasks import TaskSpec

__all__ = [
    "ADDED_QUESTION",
    "NEW_CRITERION_SET",
    "CriteriaSpec",
    "Setup",
    "criteria_spec",
    "effective_threshold",
    "json_or_none",
    "redecide",
    "save_fitted_thresholds",
    "set_up",
]

ADDED_QUESTION = "(added from pre-computed ratings)"
NEW_CRITERION_SET = "INSERT INTO criterion_sets (name) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM criterion_sets WHERE name = ?)"
"""Record a criterion set (parameters: its name, twice) unless it is there (no key to conflict on in a team store)."""

CriteriaSpec = tuple[str, list[dict[str, Any]], dict[str, Any] | None]
"""A checked criterion set: its name, its criteria (label, question, kind, config), its judge block."""


@dataclass(slots=True)
class Setup:
    """The experiment as the upload found (and prepared) it."""

    result: UploadResult
    """The result the upload fills in."""
    collection: str
    """The experiment's collection."""
    tasks_from_trials: bool
    """True when the collection takes its tasks from the trials (a new collection without a tasks file)."""
    known_tasks: set[str] = field(default_factory=set)
    """Task names of the collection."""
    criterion_labels: set[str] = field(default_factory=set)
    """Labels of the experiment's criterion set."""
    next_position: int = 0
    """Position the next added criterion takes."""


def json_or_none(v: Any) -> str | None:
    """``v`` as JSON text (None stays None)."""
    return None if v is None else orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def criteria_spec(criteria: dict[str, Any]) -> CriteriaSpec:
    """Check the criterion-set data handed to an upload: ``{name, criteria: [...], judge: {...}}``."""
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


def set_up(
    db: duckdb.DuckDBPyConnection,
    experiment: str,
    *,
    upload_id: str,
    collection: str | None,
    criteria: CriteriaSpec | None,
    tasks: list[TaskSpec] | None,
    sources: list[str],
) -> Setup:
    """Create or check the experiment, its collection, tasks and criteria; record the upload."""
    row = db.execute("SELECT collection, criterion_set FROM experiments WHERE name = ?", [experiment]).fetchone()
    if row is not None:
        coll, cset = row
        if collection is not None and collection != coll:
            raise StoreError(f"experiment {experiment!r} uses collection {coll!r}, not {collection!r}")
    else:
        coll, cset = collection or experiment, None
    if criteria is not None and cset is not None and cset != criteria[0]:
        raise StoreError(f"experiment {experiment!r} uses criterion set {cset!r}, not {criteria[0]!r}")
    result = UploadResult(experiment, coll, cset, upload_id)

    coll_row = db.execute(
        "SELECT c.created_by_upload, u.finished_at IS NULL AND u.upload_id IS NOT NULL "
        "FROM collections c LEFT JOIN uploads u ON u.upload_id = c.created_by_upload WHERE c.name = ?",
        [coll],
    ).fetchone()
    if coll_row is None:
        # A new collection takes its tasks from the tasks file, or else from the trials.
        from_trials = tasks is None
        db.execute(
            "INSERT INTO collections (name, created_by_upload) VALUES (?, ?)",
            [coll, upload_id if from_trials else None],
        )
    else:
        # An interrupted upload that was building the collection from its trials is resumed as such.
        from_trials = bool(coll_row[1]) and tasks is None
        if from_trials:
            db.execute("UPDATE collections SET created_by_upload = ? WHERE name = ?", [upload_id, coll])

    if tasks is not None:
        result.created_tasks += _upsert_tasks(db, coll, tasks)

    judge_config = None
    if criteria is not None:
        cset, items, judge_config = criteria
        _upsert_criteria(db, cset, items, result)
    if row is None:
        db.execute(
            "INSERT INTO experiments (name, collection, criterion_set, judge_config) VALUES (?, ?, ?, ?)",
            [experiment, coll, cset, json_or_none(judge_config)],
        )
    elif criteria is not None:
        db.execute(
            "UPDATE experiments SET criterion_set = ?, judge_config = ? WHERE name = ?",
            [cset, json_or_none(judge_config), experiment],
        )
    result.criterion_set = cset
    setup = Setup(result, coll, from_trials)
    if cset is not None:
        rows = db.execute("SELECT label, position FROM criteria WHERE criterion_set = ?", [cset]).fetchall()
        setup.criterion_labels = {r[0] for r in rows}
        setup.next_position = max((r[1] for r in rows), default=-1) + 1
    db.execute(
        "INSERT INTO uploads (upload_id, experiment, started_at, user_name, host, sources) "
        "VALUES (?, ?, current_timestamp, ?, ?, ?)",
        [upload_id, experiment, _user(), socket.gethostname(), json_or_none(sources)],
    )
    setup.known_tasks = {r[0] for r in db.execute("SELECT name FROM tasks WHERE collection = ?", [coll]).fetchall()}
    return setup


def _upsert_tasks(db: duckdb.DuckDBPyConnection, collection: str, tasks: list[TaskSpec]) -> int:
    existing = {
        r[0]: (r[1], tuple(r[2] or ()))
        for r in db.execute("SELECT name, instruction, tags FROM tasks WHERE collection = ?", [collection]).fetchall()
    }
    created = 0
    for t in tasks:
        if t.name not in existing:
            db.execute(
                "INSERT INTO tasks (collection, name, instruction, tags) VALUES (?, ?, ?, ?)",
                [collection, t.name, t.instruction, list(t.tags)],
            )
            created += 1
        elif existing[t.name] != (t.instruction, t.tags):
            db.execute(
                "UPDATE tasks SET instruction = ?, tags = ? WHERE collection = ? AND name = ?",
                [t.instruction, list(t.tags), collection, t.name],
            )
    return created


def _upsert_criteria(
    db: duckdb.DuckDBPyConnection, cset: str, items: list[dict[str, Any]], result: UploadResult
) -> None:
    db.execute(NEW_CRITERION_SET, [cset, cset])
    existing = {
        r[0]: (r[1], r[2], orjson.loads(r[3]) if r[3] else {}, r[4], r[5])
        for r in db.execute(
            "SELECT label, question, kind, config, position, origin FROM criteria WHERE criterion_set = ?", [cset]
        ).fetchall()
    }
    position = max((v[3] for v in existing.values()), default=-1) + 1
    for c in items:
        old = existing.get(c["label"])
        config = json_or_none(c["config"])
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


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def effective_threshold(config: dict[str, Any], fitted: float | None) -> float | None:
    """The ``p_yes`` threshold a criterion is judged with: the criteria file's ``threshold`` when it
    sets one (an explicit choice wins), else the one fitted from labels, else None (the default)."""
    explicit = config.get("threshold")
    return float(explicit) if isinstance(explicit, (int, float)) else fitted


def save_fitted_thresholds(
    db: duckdb.DuckDBPyConnection, criterion_set: str, fits: dict[str, tuple[float, dict[str, Any]]]
) -> None:
    """Keep each fitted threshold (and where it came from) with its criterion, in the caller's transaction.

    Stored beside the file's ``config``, not in it: uploading the criteria file again (which
    rewrites ``config``) keeps the fitted value, and the file's own ``threshold`` still wins.
    """
    known = {r[0] for r in db.execute("SELECT label FROM criteria WHERE criterion_set = ?", [criterion_set]).fetchall()}
    missing = sorted(set(fits) - known)
    if missing:
        raise CriteriaError(f"criterion set {criterion_set!r} has no criterion {missing[0]!r}")
    for label, (threshold, details) in fits.items():
        db.execute("UPDATE criteria SET fitted_threshold = ?, fitted = ? WHERE criterion_set = ? AND label = ?",
                   [threshold, json_or_none(details), criterion_set, label])


def redecide(db: duckdb.DuckDBPyConnection, experiment: str, thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Decide the experiment's scored judge verdicts again with ``thresholds``; the changed ones.

    Only single-call judge ratings with a ``p_yes`` and a YES/NO verdict are touched (a vote of
    several samples or models has no one score). Each changed rating keeps every field but the
    verdict; the verdict it replaces goes to ``rating_history`` (the ``replaced_ratings`` view),
    as any replaced rating does. Runs in the caller's transaction.
    """
    if not thresholds:
        return []
    rows = db.execute(
        """
        SELECT r.trial_id, r.criterion, r.verdict, r.p_yes FROM rating_data r
        JOIN trial_data t USING (trial_id)
        WHERE t.experiment = ? AND r.source = 'judge' AND r.p_yes IS NOT NULL AND r.verdict IN ('YES', 'NO')
          AND r.votes IS NULL AND r.criterion IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY r.trial_id, r.criterion
        """,
        [experiment, list(thresholds)],
    ).fetchall()
    changed = []
    for trial_id, criterion, verdict, score in rows:
        new = "YES" if score >= thresholds[criterion] else "NO"
        if new != verdict:
            changed.append({"trial_id": trial_id, "criterion": criterion, "old": verdict, "new": new, "p_yes": score})
    for c in changed:
        db.execute("INSERT INTO rating_history BY NAME SELECT r.*, current_timestamp AS replaced_at FROM rating_data r "
                   "WHERE r.trial_id = ? AND r.criterion = ?", [c["trial_id"], c["criterion"]])
        db.execute("UPDATE rating_data SET verdict = ?, created_at = current_timestamp WHERE trial_id = ? AND criterion = ?",
                   [c["new"], c["trial_id"], c["criterion"]])
    return changed
