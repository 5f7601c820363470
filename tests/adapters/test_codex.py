"""Codex CLI rollouts: sniffing, event copies, token counts, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert
from atif.adapters.registry import detect
from atif.cli import cli

[ROLLOUT] = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "codex").glob("rollout-*.jsonl"))


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    day = tmp_path / "sessions" / "2025" / "10" / "06"
    day.mkdir(parents=True)
    shutil.copy(ROLLOUT, day / ROLLOUT.name)
    return tmp_path / "sessions"


def test_a_rollout_and_a_sessions_folder_are_detected_with_a_reason(sessions: Path) -> None:
    adapter, answers = detect(ROLLOUT)
    assert adapter.name == "codex" and "session_meta" in answers[-1][1].reason
    adapter, answers = detect(sessions)
    assert adapter.name == "codex" and "1 Codex CLI rollout session" in answers[-1][1].reason


def test_event_copies_and_runtime_events_are_accounted_for() -> None:
    result = convert([ROLLOUT], None, dry_run=True)
    [inp] = result.inputs
    assert inp.skip_reasons == {
        "a repeated token_count event": 1,
        "a token_count event without usage": 1,
        "an event_msg agent_message (a copy of a response item)": 1,
        "an event_msg agent_reasoning (a copy of a response item)": 1,
        "an event_msg exec_command_end (runtime event, not conversation)": 1,
        "an event_msg task_complete (runtime event, not conversation)": 1,
        "an event_msg user_message (a copy of a response item)": 1,
    }
    assert inp.records_read == 19 and inp.records_mapped == 12


def test_an_event_without_its_response_item_is_still_mapped(sessions: Path) -> None:
    [f] = sessions.rglob("*.jsonl")
    kept = [line for line in f.read_text().splitlines() if '"role":"assistant"' not in line]
    f.write_text("\n".join(kept) + "\n")
    result = convert([f], sessions.parent / "out")
    doc = json.loads(next((sessions.parent / "out" / "trajectories").rglob("*.json")).read_text())
    assert result.converted == 1
    assert doc["steps"][-1]["message"].startswith("Added `--version`")


def test_a_cut_off_rollout_keeps_its_good_lines(sessions: Path) -> None:
    [f] = sessions.rglob("*.jsonl")
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:12]) + "\n" + lines[12][:40] + "\n")
    r = CliRunner().invoke(cli, ["convert", str(f), "--dry-run", "--format", "json"])
    assert r.exit_code == 0, r.output
    [inp] = json.loads(r.output)["inputs"]
    assert inp["trials"] == 1 and any(w.startswith("line 13 (") for w in inp["warnings"])


def test_unknown_record_types_are_listed_by_dry_run(sessions: Path) -> None:
    [f] = sessions.rglob("*.jsonl")
    f.write_text(f.read_text() + '{"timestamp":"2025-10-06T14:03:00Z","type":"hologram","payload":{}}\n')
    r = CliRunner().invoke(cli, ["convert", str(f), "--dry-run"])
    assert "skipped 1 record: an unknown record type 'hologram'" in r.output


@pytest.mark.parametrize(("case", "data", "reason"), [
    ("meta only", b'{"timestamp":"t","type":"session_meta","payload":{"id":"x","cli_version":"0.45.0"}}\n',
     "no agent step"),
    ("binary garbage", b"\xff\xfe\x00garbage" * 40, "no adapter recognises"),
])
def test_bad_rollouts_fail_in_one_line_and_the_batch_goes_on(
    sessions: Path, tmp_path: Path, case: str, data: bytes, reason: str
) -> None:
    bad = tmp_path / "rollout-bad.jsonl"
    bad.write_bytes(data)
    r = CliRunner().invoke(cli, ["convert", str(bad), str(ROLLOUT), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and reason in failed[0] and "1 converted" in r.output


REAL = Path(__file__).resolve().parents[2] / "fixtures" / "codex" / "real"


def test_a_real_codex_rollout_keeps_each_responses_usage_and_lists_what_it_skips(tmp_path: Path) -> None:
    [rollout] = sorted(REAL.rglob("rollout-*.jsonl"))
    adapter, _ = detect(REAL)
    assert adapter.name == "codex"
    records = [json.loads(line) for line in rollout.read_text().splitlines()]
    usages = [r["payload"]["info"]["last_token_usage"] for r in records
              if r["type"] == "event_msg" and r["payload"]["type"] == "token_count"]
    result = convert([rollout], tmp_path / "out")
    assert result.converted == 1 and not result.failures
    [doc_path] = (tmp_path / "out" / "trajectories").rglob("*.json")
    doc = json.loads(doc_path.read_text())
    metrics = [s["metrics"] for s in doc["steps"] if s["source"] == "agent"]
    assert [(m["prompt_tokens"], m["cached_tokens"], m["completion_tokens"]) for m in metrics] == [
        (u["input_tokens"], u["cached_input_tokens"], u["output_tokens"]) for u in usages]
    calls = [c["function_name"] for s in doc["steps"] for c in s.get("tool_calls") or []]
    outputs = [r["payload"]["call_id"] for r in records if r["payload"].get("type") == "function_call_output"]
    assert len(calls) == len(outputs) == 4
    dry = CliRunner().invoke(cli, ["convert", str(rollout), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    for reason in ("a token_usage_record", "a world_state record", "an event_msg item_completed"):
        assert f": {reason}" in dry.output


def test_an_unknown_codex_record_type_is_counted_and_listed(tmp_path: Path) -> None:
    [rollout] = sorted(REAL.rglob("rollout-*.jsonl"))
    lines = rollout.read_text().splitlines()
    lines.insert(3, json.dumps({"timestamp": "2026-01-01T00:00:00Z", "type": "shiny_new", "payload": {"x": 1}}))
    src = tmp_path / rollout.name
    src.write_text("\n".join(lines) + "\n")
    dry = CliRunner().invoke(cli, ["convert", str(src), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "skipped 1 record: an unknown record type 'shiny_new'" in dry.output
