"""The judge benchmark: run judge configurations over a labelled set and collect their verdicts.

A labelled set is trials plus a reference YES/NO per criterion: a JSONL file in the
``atif calibrate`` format (``{task_name, epoch, criterion, rating}``, paired with the trials
of an experiment by task and epoch) or an experiment's own ``human`` ratings. Labels whose
trial is not in the store, or whose criterion is not in the criteria file, are reported and
left out, never fatal.

Each configuration runs in a scratch store (a temporary DuckDB file) so the benchmark never
writes the user's store: the labelled trials are copied there with the criteria file, and
:func:`atif.judge.engine.evaluate` judges them as any run would (cache, retries, budget). Only
the labelled pairs are judged: a trial labelled on some criteria is not asked the others (the
scratch store holds a ``precomputed`` placeholder for those, which a judge run never touches). What
comes back per case is the verdict, its cost and latency; scoring and comparing them is
:mod:`atif.report.benchmark`'s job.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atif.errors import InputError
from atif.judge.criteria import CriteriaFile
from atif.store import Store
from atif.trial import Converted, Failure, Trial

__all__ = ["BenchCase", "BenchRun", "bench_labels", "run_bench"]

_VERDICTS = {"yes": "YES", "no": "NO", "true": "YES", "false": "NO", "pass": "YES", "fail": "NO"}


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One labelled trial x criterion."""

    trial_id: str
    """The trial in the source store."""
    task_name: str
    epoch: int
    criterion: str
    reference: str
    """``YES`` or ``NO``."""


@dataclass(slots=True)
class BenchRun:
    """The verdicts of one judge configuration over the labelled set."""

    name: str
    """A short name of the configuration (its model, or the file it came from)."""
    model: str | None
    verdicts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(trial_id, criterion) -> {verdict, cost_usd, latency_ms, cached, error}."""
    seconds: float = 0.0
    """Wall time of the run."""


def _verdict(value: Any) -> str | None:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return _VERDICTS.get(str(value).strip().lower()) if isinstance(value, str) else None


def bench_labels(store: Store, labels: str | Path, criteria: CriteriaFile, *, experiment: str | None = None,
                 against: str = "human") -> tuple[list[BenchCase], list[str]]:
    """The labelled cases, and one line per label left out (trial not in the store, unknown criterion).

    ``labels`` is a JSONL file (then ``experiment`` holds the trials) or the name of an
    experiment whose ``against`` ratings are the labels.
    """
    wanted = {c.label for c in criteria.criteria}
    problems: list[str] = []
    path = Path(labels)
    if path.suffix.lower() in (".jsonl", ".ndjson") or path.is_file():
        if experiment is None:
            raise InputError("a labels file needs --experiment: the experiment holding its trials", path=str(path))
        rows = store.read("SELECT trial_id, task_name, epoch FROM trials WHERE experiment = ?", [experiment])
        by_key: dict[tuple[str, int], list[str]] = {}
        for r in rows:
            by_key.setdefault((r["task_name"], r["epoch"]), []).append(r["trial_id"])
        cases = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read the labels: {exc.strerror}", path=str(path)) from None
        for i, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                raise InputError(f"line {i}: not JSON", path=str(path)) from None
            if not isinstance(row, dict) or row.get("source") not in (None, against):
                continue
            task, epoch, label = row.get("task_name"), row.get("epoch", 1), row.get("criterion", row.get("label"))
            verdict = _verdict(row.get("rating", row.get("verdict")))
            if not isinstance(task, str) or not isinstance(label, str) or verdict is None or not isinstance(epoch, int):
                raise InputError(f"line {i}: expected task_name, epoch, criterion and a YES/NO rating", path=str(path))
            ids = by_key.get((task, epoch), [])
            if label not in wanted:
                problems.append(f"line {i}: criterion {label!r} is not in the criteria file")
            elif len(ids) != 1:
                problems.append(f"line {i}: task {task!r} epoch {epoch} has "
                                f"{'no trial' if not ids else f'{len(ids)} trials'} in experiment {experiment!r}")
            else:
                cases.append(BenchCase(ids[0], task, epoch, label, verdict))
        return cases, problems
    rows = store.read("""
        SELECT r.trial_id, t.task_name, t.epoch, r.criterion, r.verdict FROM ratings r JOIN trials t USING (trial_id)
        WHERE r.experiment = ? AND r.source = ? AND r.verdict IN ('YES', 'NO')
        ORDER BY t.task_name, t.epoch, r.criterion""", [str(labels), against])
    if not rows:
        raise InputError(f"experiment {str(labels)!r} has no {against} YES/NO ratings to use as labels")
    cases = []
    for r in rows:
        if r["criterion"] in wanted:
            cases.append(BenchCase(r["trial_id"], r["task_name"], r["epoch"], r["criterion"], r["verdict"]))
        else:
            problems.append(f"{r['task_name']} epoch {r['epoch']}: criterion {r['criterion']!r} is not in the criteria file")
    return cases, problems


def _criteria_spec(criteria: CriteriaFile, labels: set[str], model: str | None,
                   api_base: str | None) -> dict[str, Any]:
    spec = criteria.store_spec(labels)
    judge = spec["judge"]
    if model:
        judge["model"] = model
        if api_base is None:
            judge.pop("api_base", None)
    if api_base:
        judge["api_base"] = api_base
    return {**spec, "name": f"bench-{criteria.name}"}


def run_bench(store: Store, cases: list[BenchCase], criteria: CriteriaFile, *, name: str | None = None,
              model: str | None = None, api_base: str | None = None, max_cost: float | None = None) -> BenchRun:
    """Judge every labelled case with ``criteria``'s judge block (``model``/``api_base`` override it)."""
    from atif.judge.engine import evaluate

    trial_ids = list(dict.fromkeys(c.trial_id for c in cases))
    labels = {c.criterion for c in cases}
    spec = _criteria_spec(criteria, labels, model, api_base)
    run = BenchRun(name or spec["judge"].get("model") or "(default model)", spec["judge"].get("model"))
    items: list[Converted | Failure] = []
    instructions: dict[str, str | None] = {}
    for tid in trial_ids:
        record = store.trial(tid)
        instructions.setdefault(record["task_name"], (record.get("task") or {}).get("instruction"))
        trial = Trial(task_name=record["task_name"], epoch=record["epoch"], trial_id=tid)
        items.append(Converted(record["trajectory"], trial, tid, tid, raw=record.get("trajectory_bytes"),
                               instruction=instructions[record["task_name"]]))
    with tempfile.TemporaryDirectory(prefix="atif-bench-") as tmp:
        started = time.perf_counter()
        with Store(Path(tmp) / "bench.duckdb") as scratch:
            result = scratch.ingest(items, "bench", criteria=spec, create_missing_tasks=True)
            if not result.ok:
                raise InputError(f"the labelled trials could not be copied for the benchmark: {result}")
            by_key = {(r["task_name"], r["epoch"]): r["trial_id"]
                      for r in scratch.read("SELECT trial_id, task_name, epoch FROM trials")}
            labelled = {(by_key.get((c.task_name, c.epoch)), c.criterion) for c in cases}
            skip = [{"trial_id": tid, "criterion": label, "verdict": "UNSCORED", "source": "precomputed",
                     "error": "not in the labelled set"}
                    for tid in by_key.values() for label in sorted(labels) if (tid, label) not in labelled]
            if skip:
                scratch.save_ratings(skip)
            summary = evaluate(scratch, "bench", max_cost=max_cost)
            run.model = run.model or summary.model
            rated = {(r["trial_id"], r["criterion"]): r for r in scratch.ratings("bench")}
        run.seconds = time.perf_counter() - started
    for c in cases:
        r = rated.get((by_key.get((c.task_name, c.epoch), ""), c.criterion))
        run.verdicts[(c.trial_id, c.criterion)] = {
            "verdict": r["verdict"] if r else "UNSCORED", "cost_usd": r.get("cost_usd") if r else None,
            "latency_ms": r.get("latency_ms") if r else None, "cached": bool(r and r.get("cached")),
            "error": (r.get("error") if r else "not rated"),
        }
    return run
