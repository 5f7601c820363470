"""SWE-agent and mini-SWE-agent trajectories: both formats, text-based actions, demonstrations, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert
from atif.adapters.registry import detect
from atif.cli import cli

MINI = Path(__file__).resolve().parents[2] / "fixtures" / "swe-agent" / "fix_add.traj.json"

# The shape SWE-agent 1.x writes (sweagent/types.py: TrajectoryStep, HistoryItem, AgentInfo), hand-written.
SWE_TRAJ: dict[str, Any] = {
    "trajectory": [{"action": "ls", "observation": "calc.py", "response": "Listing.\n\n```\nls\n```", "thought": "Listing.",
                    "execution_time": 0.1, "state": {}, "query": [], "extra_info": {}}],
    "history": [
        {"role": "system", "content": "You are an autonomous programmer.", "agent": "main", "message_type": "system_prompt"},
        {"role": "user", "content": "Demo task", "agent": "main", "message_type": "demonstration", "is_demo": True},
        {"role": "user", "content": "Fix add() in calc.py", "agent": "main", "message_type": "observation"},
        {"role": "assistant", "content": "Listing.\n\n```\nls\n```", "thought": "Listing.", "action": "ls",
         "agent": "main", "message_type": "action"},
        {"role": "user", "content": "calc.py", "agent": "main", "message_type": "observation"},
        {"role": "assistant", "content": "Submitting.", "thought": "Submitting.", "action": "submit",
         "agent": "main", "message_type": "action"},
        {"role": "user", "content": "diff --git a/calc.py b/calc.py", "agent": "main", "message_type": "observation"},
    ],
    "info": {"exit_status": "submitted", "submission": "diff --git a/calc.py b/calc.py", "swe_agent_version": "1.1.0",
             "model_stats": {"instance_cost": 0.12, "tokens_sent": 5400, "tokens_received": 310, "api_calls": 2}},
    "replay_config": "{}", "environment": "main",
}


def test_a_mini_trajectory_is_detected_with_a_reason() -> None:
    adapter, answers = detect(MINI)
    assert adapter.name == "swe-agent" and "mini-swe-agent-1.1" in answers[-1][1].reason


def test_the_submission_and_exit_status_reach_the_trial(tmp_path: Path) -> None:
    convert([MINI], tmp_path / "out")
    trial = json.loads((tmp_path / "out" / "trials.jsonl").read_text())
    assert trial["task_name"] == "fix_add" and trial["error"] is None
    assert trial["metadata"]["exit_status"] == "Submitted"
    assert trial["metadata"]["submission"].startswith("diff --git a/calc.py")


def test_a_swe_agent_traj_maps_actions_and_observations_and_skips_demonstrations(tmp_path: Path) -> None:
    f = tmp_path / "astropy__astropy-12907.traj"
    f.write_text(json.dumps(SWE_TRAJ))
    result = convert([f], tmp_path / "out")
    assert result.converted == 1, result.failures
    assert result.inputs[0].skip_reasons == {"a demonstration message (an in-context example, not this run)": 1}
    doc = json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())
    agent_steps = [s for s in doc["steps"] if s["source"] == "agent"]
    assert [s["tool_calls"][0]["function_name"] for s in agent_steps] == ["ls", "submit"]
    assert agent_steps[0]["observation"]["results"][0]["content"] == "calc.py"
    trial = json.loads((tmp_path / "out" / "trials.jsonl").read_text())
    assert (trial["task_name"], trial["input_tokens"], trial["output_tokens"]) == ("astropy__astropy-12907", 5400, 310)


def test_a_text_based_mini_trajectory_reads_the_bash_block(tmp_path: Path) -> None:
    doc = {"trajectory_format": "mini-swe-agent-1", "info": {"exit_status": "LimitsExceeded", "submission": ""},
           "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"},
                        {"role": "assistant", "content": "THOUGHT: look\n\n```bash\nls -la\n```"},
                        {"role": "user", "content": "<returncode>0</returncode>\n<output>\na.py\n</output>"},
                        {"role": "exit", "content": "", "extra": {"exit_status": "LimitsExceeded"}}]}
    f = tmp_path / "t.traj.json"
    f.write_text(json.dumps(doc))
    convert([f], tmp_path / "out")
    out = json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())
    step = out["steps"][2]
    assert step["tool_calls"][0]["arguments"] == {"command": "ls -la"}
    assert "a.py" in step["observation"]["results"][0]["content"]
    trial = json.loads((tmp_path / "out" / "trials.jsonl").read_text())
    assert trial["error"] == "exit status: LimitsExceeded"


@pytest.mark.parametrize(("case", "data", "reason"), [
    ("only demonstrations", json.dumps({**SWE_TRAJ, "history": SWE_TRAJ["history"][:2]}), "no agent step"),
    ("truncated", MINI.read_text()[:500], "malformed JSON"),
    ("binary garbage", "\x00\x01\x02", "malformed JSON"),
])
def test_bad_trajectories_fail_in_one_line_and_the_batch_goes_on(tmp_path: Path, case: str, data: str, reason: str) -> None:
    bad = tmp_path / "bad.traj"
    bad.write_text(data)
    r = CliRunner().invoke(cli, ["convert", str(bad), str(MINI), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and reason in failed[0] and "1 converted" in r.output
