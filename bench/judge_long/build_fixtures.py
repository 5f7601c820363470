"""Rebuild ``fixtures/long/`` from tau-bench's published airline trajectories.

Source: sierra-research/tau-bench (MIT), ``historical_trajectories/gpt-4o-airline.json``:
200 runs of gpt-4o as an airline customer-service agent (50 tasks x 4 trials), each with the
environment's own reward (1.0 when the final database state and outputs match the task's
ground truth, else 0.0). We keep the longest runs, 10 solved and 10 not, and split them
into a tuning half and a held-out test half (5 + 5 each), stratified and deterministic.

    python -m bench.judge_long.build_fixtures path/to/gpt-4o-airline.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "long"
PER_CLASS = 10


def _size(run: dict) -> int:
    return len(json.dumps(run["traj"]))


def build(source: Path) -> None:
    runs = json.loads(source.read_text(encoding="utf-8"))
    runs.sort(key=lambda r: (-_size(r), r["task_id"], r["trial"]))
    chosen: list[dict] = []
    seen_tasks: set[int] = set()
    for label in (1.0, 0.0):
        picked = 0
        for run in runs:
            # One run per task, so the two halves never share a task.
            if picked == PER_CLASS or run["reward"] != label or run["task_id"] in seen_tasks:
                continue
            seen_tasks.add(run["task_id"])
            chosen.append(run)
            picked += 1
    OUT.mkdir(parents=True, exist_ok=True)
    labels = []
    for cls in (1.0, 0.0):
        group = [r for r in chosen if r["reward"] == cls]
        for i, run in enumerate(group):
            case = f"airline-t{run['task_id']:02d}-r{run['trial']}"
            (OUT / f"{case}.json").write_text(json.dumps({"messages": run["traj"]}) + "\n",
                                              encoding="utf-8")
            labels.append({"case": case, "task_id": run["task_id"], "trial": run["trial"],
                           "reward": run["reward"], "split": "tune" if i % 2 == 0 else "test",
                           "instruction": run["info"]["task"]["instruction"]})
    with (OUT / "labels.jsonl").open("w", encoding="utf-8") as f:
        for row in sorted(labels, key=lambda r: r["case"]):
            f.write(json.dumps(row, sort_keys=True) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
