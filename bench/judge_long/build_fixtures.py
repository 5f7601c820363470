"""Rebuild ``fixtures/long/`` from tau-bench's published airline trajectories.

Source: sierra-research/tau-bench (MIT), ``historical_trajectories/gpt-4o-airline.json``:
200 runs of gpt-4o as an airline customer-service agent (50 tasks x 4 trials), each with the
environment's own reward (1.0 when the final database state and outputs match the task's
ground truth, else 0.0).

- Batch 1 (unchanged since the first figures, so they stay comparable): the longest runs, one per
  task, 10 solved and 10 not, split into a tuning half and a held-out test half (5 + 5 each),
  stratified and deterministic; one ``<case>.json`` each.
- Batch 2: the same rule over the 30 tasks batch 1 left, another 10 solved and 10 not, split
  5 + 5 each the same way, so that ``tune`` and ``test`` hold 20 runs each (10 per class) and no
  task is in both. Stored compactly in one ``batch2.jsonl.gz`` (the 10 KB policy each run repeats
  compresses away); ``bench.judge_long.run`` reads a case from either place.

    python -m bench.judge_long.build_fixtures path/to/gpt-4o-airline.json

(get the file with ``git clone https://github.com/sierra-research/tau-bench`` and take
``historical_trajectories/gpt-4o-airline.json``.)
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "long"
BATCH2 = OUT / "batch2.jsonl.gz"
PER_CLASS = 10


def _size(run: dict[str, Any]) -> int:
    return len(json.dumps(run["traj"]))


def case_name(run: dict[str, Any]) -> str:
    return f"airline-t{run['task_id']:02d}-r{run['trial']}"


def pick(runs: list[dict[str, Any]], exclude_tasks: set[int]) -> list[dict[str, Any]]:
    """The longest runs, one per task none of ``exclude_tasks``, ``PER_CLASS`` solved then as many failed."""
    runs = sorted(runs, key=lambda r: (-_size(r), r["task_id"], r["trial"]))
    chosen: list[dict[str, Any]] = []
    seen_tasks = set(exclude_tasks)
    for label in (1.0, 0.0):
        picked = 0
        for run in runs:
            # One run per task, so the two halves never share a task.
            if picked == PER_CLASS or run["reward"] != label or run["task_id"] in seen_tasks:
                continue
            seen_tasks.add(run["task_id"])
            chosen.append(run)
            picked += 1
    return chosen


def labelled(chosen: list[dict[str, Any]], batch: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(run, label row) pairs: within each class, alternate runs go to ``tune`` and ``test``."""
    out = []
    for cls in (1.0, 0.0):
        group = [r for r in chosen if r["reward"] == cls]
        for i, run in enumerate(group):
            row = {"case": case_name(run), "task_id": run["task_id"], "trial": run["trial"],
                   "reward": run["reward"], "split": "tune" if i % 2 == 0 else "test",
                   "instruction": run["info"]["task"]["instruction"]}
            if batch > 1:
                # Batch-1 rows stay byte for byte as they were.
                row["batch"] = batch
            out.append((run, row))
    return out


def build(source: Path) -> None:
    runs = json.loads(source.read_text(encoding="utf-8"))
    first = labelled(pick(runs, set()), 1)
    second = labelled(pick(runs, {run["task_id"] for run, _ in first}), 2)
    OUT.mkdir(parents=True, exist_ok=True)
    for run, row in first:
        (OUT / f"{row['case']}.json").write_text(json.dumps({"messages": run["traj"]}) + "\n", encoding="utf-8")
    # mtime 0: the same source gives the same bytes.
    with BATCH2.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        for run, row in sorted(second, key=lambda p: p[1]["case"]):
            gz.write((json.dumps({"case": row["case"], "messages": run["traj"]}) + "\n").encode("utf-8"))
    with (OUT / "labels.jsonl").open("w", encoding="utf-8") as f:
        for row in sorted([r for _, r in first + second], key=lambda r: (r.get("batch", 1), r["case"])):
            f.write(json.dumps(row, sort_keys=True) + "\n")


def messages(case: str) -> dict[str, Any]:
    """A case's conversation as ``{"messages": [...]}``: its own file (batch 1) or its line of batch 2."""
    path = OUT / f"{case}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    with gzip.open(BATCH2, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["case"] == case:
                return {"messages": row["messages"]}
    raise SystemExit(f"no case {case} in {OUT}")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
