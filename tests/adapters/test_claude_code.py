"""Claude Code session transcripts: sniffing, subagents, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert
from atif.adapters.registry import detect
from atif.cli import cli

PROJECT = Path(__file__).resolve().parents[2] / "fixtures" / "claude-code" / "project"
SESSION = "5b1c2d3e-4f50-4a61-9b72-83c94da5e6f7"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dst = tmp_path / "projects" / "-home-dev-shop-api"
    shutil.copytree(PROJECT, dst)
    (dst / "0e9d8c7b-6a59-4847-9362-514f3e2d1c0b.jsonl").unlink()
    return dst


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_session_file_and_a_projects_folder_are_detected_with_a_reason(project: Path) -> None:
    adapter, answers = detect(project / f"{SESSION}.jsonl")
    assert adapter.name == "claude-code"
    assert "Claude Code" in answers[-1][1].reason
    adapter, answers = detect(project.parent)
    assert adapter.name == "claude-code" and "1 Claude Code session" in answers[-1][1].reason


def test_a_projects_folder_gives_one_trial_per_session_with_its_subagent(project: Path, tmp_path: Path) -> None:
    other = project.parent / "-home-dev-blog"
    other.mkdir()
    lines = _lines(project / f"{SESSION}.jsonl")
    (other / "1111.jsonl").write_text("\n".join(line.replace(SESSION, "1111") for line in lines) + "\n")
    result = convert([project.parent], tmp_path / "out")
    assert result.converted == 2 and not result.failures
    doc = json.loads((tmp_path / "out" / "trajectories" / SESSION / f"{SESSION}.json").read_text())
    [sub] = doc["subagent_trajectories"]
    assert sub["trajectory_id"] == "agent-a7f3c2e1"
    refs = [r for s in doc["steps"] for r in (s.get("observation") or {}).get("results", [])
            if r.get("subagent_trajectory_ref")]
    assert refs[0]["source_call_id"] == "toolu_01Task"


def test_an_explicit_subagent_file_is_converted_inside_its_session(project: Path) -> None:
    agent = project / SESSION / "subagents" / "agent-a7f3c2e1.jsonl"
    result = convert([agent, project / f"{SESSION}.jsonl"], None, dry_run=True)
    assert result.converted == 1
    assert result.skipped and "subagent transcript" in result.skipped[0][1]


def test_sidechain_records_in_the_session_file_become_a_subagent(project: Path, tmp_path: Path) -> None:
    main = project / f"{SESSION}.jsonl"
    agent = project / SESSION / "subagents" / "agent-a7f3c2e1.jsonl"
    main.write_text(main.read_text() + agent.read_text())
    shutil.rmtree(project / SESSION)
    result = convert([main], tmp_path / "out")
    assert result.converted == 1, result.failures
    doc = json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())
    [sub] = doc["subagent_trajectories"]
    assert sub["trajectory_id"].startswith("sidechain-")
    assert [s["source"] for s in sub["steps"]] == ["user", "agent", "agent"]


def test_a_truncated_transcript_keeps_its_good_lines_and_names_the_bad_one(project: Path) -> None:
    main = project / f"{SESSION}.jsonl"
    lines = _lines(main)
    main.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    r = CliRunner().invoke(cli, ["convert", str(main), "--dry-run", "--format", "json"])
    assert r.exit_code == 0, r.output
    [inp] = json.loads(r.output)["inputs"]
    assert inp["trials"] == 1
    assert inp["records"]["skip_reasons"]["a line that is not valid JSON"] == 1
    assert any(w.startswith(f"line {len(lines)} (") for w in inp["warnings"])


def test_unknown_record_types_are_counted_and_listed_by_dry_run(project: Path) -> None:
    main = project / f"{SESSION}.jsonl"
    main.write_text(main.read_text() + '{"type": "hologram", "sessionId": "x"}\n')
    r = CliRunner().invoke(cli, ["convert", str(main), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 record: an unknown record type 'hologram'" in r.output
    assert "skipped 2 records: a queue-operation record (session bookkeeping, not conversation)" in r.output


BAD = [
    ("only a summary", b'{"type":"summary","summary":"Explain the pricing module","leafUuid":"u-9"}\n',
     "no agent step"),
    ("binary garbage", b"\x00\x9f\x12garbage\xff\n" * 3, "no adapter recognises"),
]


@pytest.mark.parametrize(("case", "data", "reason"), BAD, ids=[c[0] for c in BAD])
def test_bad_sessions_fail_in_one_line_and_the_batch_goes_on(
    project: Path, tmp_path: Path, case: str, data: bytes, reason: str
) -> None:
    bad = project / "bad.jsonl"
    bad.write_bytes(data)
    r = CliRunner().invoke(cli, ["convert", str(bad), str(project / f"{SESSION}.jsonl"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and str(bad) in failed[0] and reason in failed[0]
    assert "1 converted" in r.output


REAL = PROJECT.parent / "real" / "-work-demo"


def _real_session() -> Path:
    [session] = sorted(REAL.glob("*.jsonl"))
    return session


def test_a_real_claude_code_session_is_detected_and_its_subagent_linked_by_agent_id(tmp_path: Path) -> None:
    adapter, _ = detect(_real_session())
    assert adapter.name == "claude-code"
    result = convert([REAL], tmp_path / "out")
    assert result.converted == 1 and not result.failures
    [out] = (tmp_path / "out" / "trajectories").rglob("*.json")
    doc = json.loads(out.read_text())
    [sub] = doc["subagent_trajectories"]
    meta = json.loads(next(REAL.rglob("agent-*.meta.json")).read_text())
    refs = {call["function_name"]: r for s in doc["steps"] for call in s.get("tool_calls") or []
            for r in (s.get("observation") or {}).get("results", []) if r["source_call_id"] == call["tool_call_id"]}
    [ref] = refs["Agent"]["subagent_trajectory_ref"]
    assert ref == {"trajectory_id": sub["trajectory_id"], "extra": {"agentType": meta["agentType"],
                                                                    "description": meta["description"]}}
    # Token totals are the session's own steps; the subagent's are added only under extra.
    fm = doc["final_metrics"]
    own = sum(s.get("metrics", {}).get("prompt_tokens", 0) for s in doc["steps"])
    assert fm["total_prompt_tokens"] == own
    assert fm["extra"]["with_subagents"]["total_prompt_tokens"] == own + sub["final_metrics"]["total_prompt_tokens"]


def test_attachments_with_text_become_system_steps_and_unknown_records_are_listed(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    lines = _lines(_real_session())
    lines.insert(3, json.dumps({"type": "brand-new-record", "sessionId": "x", "uuid": "u"}))
    lines.insert(3, json.dumps({"type": "attachment", "attachment": {"type": "todo", "itemCount": 0}}))
    src.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["convert", str(src), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 record: an unknown record type 'brand-new-record'" in result.output
    assert "an attachment record of type 'todo' without text" in result.output
    out = convert([src], tmp_path / "out")
    [doc_path] = (tmp_path / "out" / "trajectories").rglob("*.json")
    doc = json.loads(doc_path.read_text())
    kinds = [s["extra"]["attachment"] for s in doc["steps"] if s["source"] == "system"]
    assert kinds == ["agent_listing_delta", "skill_listing"] and out.converted == 1
