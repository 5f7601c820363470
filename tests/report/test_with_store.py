"""Reports over data that went through the real upload path (atif.upload), not hand-made rows."""

from __future__ import annotations

from pathlib import Path

import orjson
from report_builders import simple_trajectory, subagent_trajectory

from atif import upload
from atif.report import build_report, compare, export_dataset, render_report_html, render_trial_html
from atif.store import Store


def _write(root: Path, rewards: list[float], verdicts: list[str]) -> Path:
    root.mkdir(parents=True)
    lines = []
    for i, (r, v) in enumerate(zip(rewards, verdicts, strict=False)):
        traj = subagent_trajectory() if i == 0 else simple_trajectory(f"task-{i}", answer=f"answer {r}")
        lines.append(orjson.dumps({
            "task_name": f"task-{i}", "trial_id": f"run-{i}", "reward": {"reward": r, "tests": i},
            "duration_seconds": 10.0 + i, "trajectory": traj,
            "criterion_ratings": [{"criterion": "correct", "rating": v, "source": "human", "reasoning": "checked",
                                   "cited_steps": [2]}],
        }))
    (root / "trials.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root


def test_report_compare_export_html_after_upload(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", [1.0, 0.5, 0.0], ["YES", "YES", "NO"])
    b = _write(tmp_path / "b", [1.0, 0.0, 0.0], ["YES", "NO", "NO"])
    with Store(tmp_path / "s.duckdb") as store:
        assert upload([a], "base", store=store).ok
        assert upload([b], "cand", store=store).ok
    with Store.open(tmp_path / "s.duckdb", read_only=True) as store:
        rep = build_report(store, "base")
        s = rep["summary"]
        assert s["n_trials"] == 3 and s["criteria"]["correct"]["n_yes"] == 2
        assert s["rewards"]["tests"]["mean"] == 1.0 and s["reward"]["mean"] == 0.5
        assert s["steps"]["n"] == 3 and s["cost_usd"]["total"] > 0  # totals come from the trajectories

        c = compare(store, "base", "cand")
        assert c["n_pairs"] == 3 and c["criteria"]["correct"]["regressed"] == 1
        assert [t["task_name"] for t in c["tasks"]["regressed"]] == ["task-1"]

        res = export_dataset(store, "base", "completion", "jsonl", tmp_path / "c.jsonl")
        assert res["rows"] == 3

        page = render_report_html(store, "base")
        assert page.count('type="application/x-atif-gzip-base64"') == 3
        tid = store.trials("base")[0]["trial_id"]
        assert "atif trial: task-0" in render_trial_html(store, tid[:8])
