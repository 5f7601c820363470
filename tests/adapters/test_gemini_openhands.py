"""Gemini CLI sessions and OpenHands event streams: detection, mapping details, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

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


GEMINI_REAL = FIXTURES / "gemini-cli" / "real" / "demo" / "chats"


def _gemini_session() -> Path:
    [session] = sorted(GEMINI_REAL.glob("session-*.jsonl"))
    return session


def _convert_one(path: Path, out: Path) -> dict[str, Any]:
    result = convert([path], out)
    assert result.converted == 1, result.failures
    return json.loads(next((out / "trajectories").rglob("*.json")).read_text())


def test_a_real_gemini_recording_is_detected_and_its_subagent_embedded(tmp_path: Path) -> None:
    adapter, answers = detect(_gemini_session())
    assert adapter.name == "gemini-cli" and "chat recording" in answers[-1][1].reason
    result = convert([GEMINI_REAL], tmp_path / "out")  # the folder: the subagent file is not a trial of its own
    assert result.converted == 1 and not result.failures
    assert [why for _, why in result.skipped] == [f"a subagent recording of {_gemini_session().name}; converted inside it"]
    doc = json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())
    [sub] = doc["subagent_trajectories"]
    [sub_file] = GEMINI_REAL.glob("*/*.jsonl")
    assert sub["trajectory_id"] == sub_file.stem and sub["session_id"] == doc["session_id"]
    refs = [r for s in doc["steps"] for r in (s.get("observation") or {}).get("results", [])
            if r.get("subagent_trajectory_ref")]
    assert [r["subagent_trajectory_ref"] for r in refs] == [[{"trajectory_id": sub_file.stem}]]
    # Each reply appears twice in the file (before and with its toolCalls): one agent step each.
    replies = {json.loads(line)["id"] for line in _gemini_session().read_text().splitlines()
               if json.loads(line).get("type") == "gemini"}
    assert sum(s["source"] == "agent" for s in doc["steps"]) == len(replies)


def test_gemini_rewind_and_set_messages_replay_as_the_cli_loads_them(tmp_path: Path) -> None:
    lines = _gemini_session().read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    prompt_id = next(r["id"] for r in recs if r.get("type") == "user" and "typo" in json.dumps(r))
    src = tmp_path / "session-rewound.jsonl"
    src.write_text("\n".join([*lines, json.dumps({"$rewindTo": prompt_id}),
                              json.dumps({"id": "u2", "type": "user", "content": [{"text": "Start over."}]}),
                              json.dumps({"id": "g2", "type": "gemini", "content": "Sure."}),
                              "{not json"]) + "\n")
    doc = _convert_one(src, tmp_path / "out")
    assert [s["message"] for s in doc["steps"]][-2:] == ["Start over.", "Sure."]
    assert not any("typo" in s["message"] for s in doc["steps"])
    dry = CliRunner().invoke(cli, ["convert", str(src), "--dry-run"])
    assert "a message undone by a later $rewindTo" in dry.output and "a line that is not valid JSON" in dry.output
    src2 = tmp_path / "session-set.jsonl"
    src2.write_text("\n".join([lines[0], json.dumps({"$set": {"messages": [
        {"id": "a", "type": "user", "content": "hi"}, {"id": "b", "type": "gemini", "content": "hello"}]}})]) + "\n")
    doc2 = _convert_one(src2, tmp_path / "out2")
    assert [(s["source"], s["message"]) for s in doc2["steps"]] == [("user", "hi"), ("agent", "hello")]
    # a metadata record that carries messages (a resumed session rewritten by the CLI) adds them
    src3 = tmp_path / "session-header.jsonl"
    header = json.loads(lines[0]) | {"messages": [{"id": "a", "type": "user", "content": "hi"}]}
    src3.write_text("\n".join([json.dumps(header), json.dumps({"id": "b", "type": "gemini", "content": "yo"})]) + "\n")
    doc3 = _convert_one(src3, tmp_path / "out3")
    assert [s["message"] for s in doc3["steps"]] == ["hi", "yo"]


OPENHANDS_REAL = next((FIXTURES / "openhands" / "real").iterdir())


def test_a_real_openhands_sdk_conversation_folder_is_detected_and_joined_with_its_usage(tmp_path: Path) -> None:
    adapter, answers = detect(OPENHANDS_REAL)
    assert adapter.name == "openhands" and "SDK conversation folder" in answers[-1][1].reason
    doc = _convert_one(OPENHANDS_REAL.parent, tmp_path / "out")  # the persistence dir: its conversations
    state = json.loads((OPENHANDS_REAL / "base_state.json").read_text())
    [usage] = state["stats"]["usage_to_metrics"].values()
    agent_steps = [s for s in doc["steps"] if s["source"] == "agent"]
    assert [(s["metrics"]["prompt_tokens"], s["metrics"]["cached_tokens"]) for s in agent_steps] == [
        (u["prompt_tokens"], u["cache_read_tokens"]) for u in usage["token_usages"]]
    assert doc["final_metrics"]["total_cost_usd"] == pytest.approx(usage["accumulated_cost"])
    failing = [r for s in agent_steps for r in s["observation"]["results"] if r.get("extra", {}).get("exit_code")]
    assert [r["content"] for r in failing] == ["cat: todo.txt: No such file or directory"]


def test_an_openhands_sdk_folder_with_an_unreadable_event_keeps_the_rest(tmp_path: Path) -> None:
    conv = tmp_path / OPENHANDS_REAL.name
    shutil.copytree(OPENHANDS_REAL, conv)
    last = sorted((conv / "events").iterdir())[-1]
    last.write_text('{"kind": "ObservationEvent", "cut off')
    (conv / "events" / "event-99999-00000000-0000-0000-0000-000000000000.json").write_text(
        json.dumps({"kind": "PauseEvent", "id": "x", "timestamp": "2026-01-01T00:00:00", "source": "user"}))
    dry = CliRunner().invoke(cli, ["convert", str(conv), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "a PauseEvent event (conversation state, not conversation)" in dry.output
    assert f"events/{last.name}" in dry.output and "an unreadable event file" in dry.output
