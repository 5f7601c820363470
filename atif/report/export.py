"""Datasets from an experiment, as JSONL or Parquet.

Kinds (one row per line; layouts in docs/reports.md):

- ``metric``: one row per trial with its reward(s), usage and every criterion verdict.
- ``preference``: per task, the best and the worst trial (by reward, then criteria
  passed) as a ``prompt`` / ``chosen`` / ``rejected`` conversation triple.
- ``completion``: per trial, the trajectory as OpenAI chat-format ``messages``, without
  steps marked ``is_copied_context``.
- ``prompt``: the same messages up to (not including) the last agent turn.
- ``views``: the store's own Parquet export of its views, partitioned by experiment.

Parquet goes through the store's ``write_parquet`` with a fixed column schema per kind;
nested data (messages, named rewards) are JSON columns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from atif.errors import ParseError, ReportError
from atif.report.reading import require_experiment
from atif.store import Store, write_parquet

__all__ = ["EXPORT_FORMATS", "EXPORT_KINDS", "export_dataset", "prompt_messages"]

EXPORT_KINDS = ("metric", "preference", "completion", "prompt", "views")
"""Dataset kinds of ``export_dataset``."""

EXPORT_FORMATS = ("jsonl", "parquet")
"""File formats of ``export_dataset`` (``views`` is always Parquet)."""

_COLUMNS: dict[str, dict[str, str]] = {
    "metric": {
        "trial_id": "VARCHAR", "experiment": "VARCHAR", "task_name": "VARCHAR", "epoch": "INTEGER",
        "agent_name": "VARCHAR", "model_name": "VARCHAR", "reward": "DOUBLE", "rewards": "JSON",
        "error": "VARCHAR", "cost_usd": "DOUBLE", "duration_seconds": "DOUBLE", "steps": "INTEGER",
        "input_tokens": "BIGINT", "output_tokens": "BIGINT", "cached_tokens": "BIGINT",
        "verdicts": "MAP(VARCHAR, VARCHAR)", "n_passed": "INTEGER", "n_rated": "INTEGER",
    },
    "preference": {
        "experiment": "VARCHAR", "task_name": "VARCHAR", "prompt": "JSON", "chosen": "JSON", "rejected": "JSON",
        "chosen_trial_id": "VARCHAR", "rejected_trial_id": "VARCHAR", "chosen_reward": "DOUBLE",
        "rejected_reward": "DOUBLE", "chosen_passed": "INTEGER", "rejected_passed": "INTEGER",
    },
    "completion": {
        "trial_id": "VARCHAR", "experiment": "VARCHAR", "task_name": "VARCHAR", "epoch": "INTEGER",
        "reward": "DOUBLE", "messages": "JSON",
    },
}
_COLUMNS["prompt"] = _COLUMNS["completion"]


def prompt_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages before the last assistant message (all of them when there is none)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return messages[:i]
    return list(messages)


def export_dataset(store: Store, experiment: str, kind: str, fmt: str, out: str | Path) -> dict[str, Any]:
    """Write ``experiment`` as a dataset of ``kind`` in ``fmt`` to ``out``; return a summary.

    ``out`` is a file, or for ``views`` a directory. The summary holds the kind, format,
    path, rows written and the trials skipped with the reason (e.g. no trajectory).
    Raises ``ReportError`` for an unknown kind or format, ``NotFoundError`` for an unknown
    experiment.
    """
    if kind not in EXPORT_KINDS:
        raise ReportError(f"unknown export kind {kind!r}; expected one of {', '.join(EXPORT_KINDS)}")
    if fmt not in EXPORT_FORMATS:
        raise ReportError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    require_experiment(store, experiment)
    if kind == "views":
        return _export_views(store, experiment, fmt, out)

    skipped: dict[str, int] = {}
    if kind == "metric":
        rows: Iterable[dict[str, Any]] = _metric_rows(store, experiment)
    elif kind == "preference":
        rows = _preference_rows(store, experiment, skipped)
    else:
        rows = _message_rows(store, experiment, kind, skipped)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = _write_jsonl(rows, out) if fmt == "jsonl" else write_parquet(rows, out, _COLUMNS[kind])
    return {"kind": kind, "format": fmt, "path": str(out), "rows": n, "skipped": skipped}


def _export_views(store: Store, experiment: str, fmt: str, out: Path) -> dict[str, Any]:
    if fmt != "parquet":
        raise ReportError("--kind views is written as Parquet only (use --format parquet)")
    store.export_parquet(out, experiment=experiment)
    files = sorted(str(p) for p in out.rglob("*.parquet")) if out.exists() else []
    return {"kind": "views", "format": "parquet", "path": str(out), "files": files, "rows": None, "skipped": {}}


def _write_jsonl(rows: Iterable[dict[str, Any]], out: Path) -> int:
    n = 0
    tmp = out.with_name(out.name + ".part")
    with tmp.open("wb") as f:
        for row in rows:
            f.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS))
            f.write(b"\n")
            n += 1
    os.replace(tmp, out)
    return n


def _metric_rows(store: Store, experiment: str) -> Iterator[dict[str, Any]]:
    verdicts: dict[str, dict[str, str]] = {}
    labels: list[str] = []
    for r in store.read("SELECT trial_id, criterion, verdict FROM ratings WHERE experiment = ?", [experiment]):
        verdicts.setdefault(r["trial_id"], {})[r["criterion"]] = r["verdict"]
        labels.append(r["criterion"])
    all_labels = sorted(set(labels))
    for row in store.read("""
            SELECT trial_id, experiment, task_name, epoch, agent_name, model_name, reward, rewards, error,
                   cost_usd, duration_seconds, steps, input_tokens, output_tokens, cached_tokens
            FROM trials WHERE experiment = ? ORDER BY task_name, epoch, trial_id""", [experiment]):
        v = verdicts.get(row["trial_id"], {})
        row["rewards"] = orjson.loads(row["rewards"]) if isinstance(row["rewards"], str) else row["rewards"]
        row["verdicts"] = {label: v.get(label) for label in all_labels}
        row["n_passed"] = sum(1 for x in v.values() if x == "YES")
        row["n_rated"] = sum(1 for x in v.values() if x in ("YES", "NO"))
        yield row


def _load(raw: bytes, trial_id: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"stored trajectory of trial {trial_id} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ParseError(f"stored trajectory of trial {trial_id} is not a JSON object")
    return doc


def _with_trajectories(store: Store, rows: list[dict[str, Any]],
                       skipped: dict[str, int]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (trial row, parsed trajectory) in row order, fetching trajectories in batches."""
    missing = [r for r in rows if not r["trajectory_id"]]
    if missing:
        skipped["no trajectory"] = skipped.get("no trajectory", 0) + len(missing)
    with_traj = [r for r in rows if r["trajectory_id"]]
    for i in range(0, len(with_traj), 500):
        chunk = with_traj[i : i + 500]
        raw = dict(store.trajectories([r["trajectory_id"] for r in chunk]))
        for r in chunk:
            data = raw.get(r["trajectory_id"])
            if data is None:
                skipped["trajectory not stored"] = skipped.get("trajectory not stored", 0) + 1
                continue
            yield r, _load(data, r["trial_id"])


def trajectory_messages(traj: dict[str, Any], *, skip_copied: bool = False) -> list[dict[str, Any]]:
    """:func:`atif.trial.trajectory_messages`, imported on first use: ``atif.trial`` builds the
    pydantic ``Trial`` model, which a report that exports nothing does not need."""
    from atif.trial import trajectory_messages as messages

    return messages(traj, skip_copied=skip_copied)


def _message_rows(store: Store, experiment: str, kind: str,
                  skipped: dict[str, int]) -> Iterator[dict[str, Any]]:
    rows = store.read("""
        SELECT trial_id, experiment, task_name, epoch, reward, trajectory_id
        FROM trials WHERE experiment = ? ORDER BY task_name, epoch, trial_id""", [experiment])
    for r, traj in _with_trajectories(store, rows, skipped):
        messages = trajectory_messages(traj, skip_copied=True)
        if kind == "prompt":
            messages = prompt_messages(messages)
        yield {"trial_id": r["trial_id"], "experiment": r["experiment"], "task_name": r["task_name"],
               "epoch": r["epoch"], "reward": r["reward"], "messages": messages}


def _preference_rows(store: Store, experiment: str,
                     skipped: dict[str, int]) -> Iterator[dict[str, Any]]:
    rows = store.read("""
        SELECT t.trial_id, t.experiment, t.task_name, t.epoch, t.reward, t.trajectory_id,
               count(r.criterion) FILTER (WHERE r.verdict = 'YES') AS passed
        FROM trials t LEFT JOIN ratings r USING (trial_id)
        WHERE t.experiment = ? AND t.trajectory_id IS NOT NULL
        GROUP BY ALL ORDER BY t.task_name, t.trial_id""", [experiment])
    (n_no_traj,) = store.read_one("SELECT count(*) FROM trials WHERE experiment = ? AND trajectory_id IS NULL",
                       [experiment])
    if n_no_traj:
        skipped["no trajectory"] = int(n_no_traj)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_task.setdefault(r["task_name"], []).append(r)

    def key(r: dict[str, Any]) -> tuple[float, int]:
        return (r["reward"] if r["reward"] is not None else float("-inf"), int(r["passed"]))

    chosen_pairs = []
    for task in sorted(by_task):
        trials = by_task[task]
        if len(trials) < 2:
            skipped["single trial for the task"] = skipped.get("single trial for the task", 0) + 1
            continue
        # Ties break on trial id so the export is deterministic.
        best = min(trials, key=lambda r: (-key(r)[0], -key(r)[1], r["trial_id"]))
        worst = min(trials, key=lambda r: (key(r), r["trial_id"]))
        if key(best) == key(worst):
            skipped["all trials of the task tie"] = skipped.get("all trials of the task tie", 0) + 1
            continue
        chosen_pairs.append((best, worst))
    wanted = [r for pair in chosen_pairs for r in pair]
    docs = {r["trial_id"]: t for r, t in _with_trajectories(store, wanted, {})}
    for best, worst in chosen_pairs:
        if best["trial_id"] not in docs or worst["trial_id"] not in docs:
            skipped["trajectory not stored"] = skipped.get("trajectory not stored", 0) + 1
            continue
        a = trajectory_messages(docs[best["trial_id"]], skip_copied=True)
        b = trajectory_messages(docs[worst["trial_id"]], skip_copied=True)
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k] and a[k].get("role") != "assistant":
            k += 1
        yield {
            "experiment": best["experiment"], "task_name": best["task_name"], "prompt": a[:k],
            "chosen": a[k:], "rejected": b[k:],
            "chosen_trial_id": best["trial_id"], "rejected_trial_id": worst["trial_id"],
            "chosen_reward": best["reward"], "rejected_reward": worst["reward"],
            "chosen_passed": int(best["passed"]), "rejected_passed": int(worst["passed"]),
        }

