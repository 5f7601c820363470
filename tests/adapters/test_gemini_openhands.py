"""Gemini CLI sessions and OpenHands event streams: detection, mapping details, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert
from atif.adapters.registry import detect
from atif.cli import cli

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GEMINI = FIXTURES / "gemini-cli" / "session-2025-10-18T14-57-f86f5318.json"
OPENHANDS = FIXTURES / "openhands" / "fix_slugify.json"


@pytest.mark.parametrize(("path", "name", "reason"), [
    (GEMINI, "gemini-cli", "Gemini CLI session"), (OPENHANDS, "openhands", "OpenHands event stream")])
def test_detected_with_a_reason(path: Path, name: str, reason: str) -> None:
    adapter, answers = detect(path)
    assert adapter.name == name and reason in answers[-1][1].reason


def test_a_failed_gemini_tool_call_keeps_its_status_and_error(tmp_path: Path) -> None:
    convert([GEMINI], tmp_path / "out")
    doc = json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())
    [result] = doc["steps"][2]["observation"]["results"]
    assert result["content"] == "File not found: /home/dev/app/src/NOTES" and result["extra"] == {"status": "error"}
    assert doc["steps"][1]["reasoning_content"].startswith("Planning the search: A recursive grep")


def test_openhands_runtime_events_are_counted_as_skipped_and_results_follow_their_cause(tmp_path: Path) -> None:
    result = convert([OPENHANDS], tmp_path / "out")
    assert result.inputs[0].skip_reasons == {
        "a agent_state_changed event (runtime state, not conversation)": 2,
        "a recall event (runtime state, not conversation)": 1}
    events = json.loads(OPENHANDS.read_text())
    for e in events:
        if "observation" in e:
            e.pop("tool_call_metadata", None)
    f = tmp_path / "no_meta_on_observations.json"
    f.write_text(json.dumps(events))
    convert([f], tmp_path / "out2")
    doc = json.loads(next((tmp_path / "out2" / "trajectories").rglob("*.json")).read_text())
    assert doc["steps"][2]["observation"]["results"][0]["source_call_id"] == "toolu_01"


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("gemini only user.json", json.dumps({"sessionId": "s", "projectHash": "h", "messages": [
        {"id": "1", "timestamp": "2025-01-01T00:00:00Z", "type": "user", "content": "hi"}]}), "no agent step"),
    ("openhands truncated.json", OPENHANDS.read_text()[:700], "malformed JSON"),
    ("garbage.json", "\x00\xff garbage", "malformed JSON"),
])
def test_bad_sessions_fail_in_one_line_and_the_batch_goes_on(tmp_path: Path, name: str, data: str, reason: str) -> None:
    bad = tmp_path / name
    bad.write_text(data)
    r = CliRunner().invoke(cli, ["convert", str(bad), str(GEMINI), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and reason in failed[0] and "1 converted" in r.output
