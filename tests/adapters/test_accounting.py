"""Nothing is lost silently: per-input record accounting, and a trajectory that lost its conversation is a failure."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert, lost_conversation
from atif.cli import cli


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    return path


_REF = {"type": "item_reference", "id": "msg_1"}
_ANSWER = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}


def test_each_input_reports_what_it_read_mapped_and_skipped(tmp_path: Path) -> None:
    f = _write(tmp_path / "items.json", [_REF, {"role": "user", "content": "hi"}, _REF, _ANSWER])
    result = convert([f], None, dry_run=True)
    assert result.converted == 1, result.failures
    records = result.inputs[0].to_dict()["records"]
    assert records == {"read": 4, "mapped": 2, "skipped": 2,
                       "skip_reasons": {"an item_reference cannot be resolved": 2}, "counted": True}


def test_json_summary_carries_the_accounting(tmp_path: Path) -> None:
    f = _write(tmp_path / "chat.json", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    r = CliRunner().invoke(cli, ["convert", str(f), "--dry-run", "--format", "json"])
    assert r.exit_code == 0, r.output
    [inp] = json.loads(r.output)["inputs"]
    assert inp["records"]["read"] == 2 and inp["records"]["mapped"] == 2 and inp["records"]["skipped"] == 0


def test_text_summary_warns_when_much_was_dropped(tmp_path: Path) -> None:
    f = _write(tmp_path / "items.json", [{"role": "user", "content": "hi"}, *[_REF] * 5, _ANSWER])
    r = CliRunner().invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "skipped 5 of 7 source records: an item_reference cannot be resolved (5)" in r.output
    dry = CliRunner().invoke(cli, ["convert", str(f), "--dry-run"])
    assert "skipped 5 records: an item_reference cannot be resolved" in dry.output


def test_a_small_loss_is_not_shouted(tmp_path: Path) -> None:
    msgs: list[object] = [{"role": "user", "content": f"q{i}"} for i in range(20)]
    f = _write(tmp_path / "items.json", [*msgs, _REF, _ANSWER])
    r = CliRunner().invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out")])
    assert "source records" not in r.output


LOST = [
    ("only user messages", [{"role": "user", "content": "hi"}], "no agent step"),
    ("empty assistant turns", [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
     "conversation is empty"),
]


@pytest.mark.parametrize(("case", "messages", "reason"), LOST, ids=[c[0] for c in LOST])
def test_a_trajectory_that_lost_its_conversation_is_a_failure(
    tmp_path: Path, case: str, messages: list[object], reason: str
) -> None:
    f = _write(tmp_path / "in" / "chat.json", {"messages": messages})
    ok = _write(tmp_path / "in" / "ok.json", {"messages": [{"role": "user", "content": "q"},
                                                           {"role": "assistant", "content": "a"}]})
    r = CliRunner().invoke(cli, ["convert", str(f), str(ok), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert reason in r.output and str(f) in r.output
    assert "Traceback" not in r.output
    assert "1 converted, 0 skipped, 1 failed" in r.output  # the batch went on
    trials = (tmp_path / "out" / "trials.jsonl").read_text().splitlines()
    assert len(trials) == 1


def test_lost_conversation_accepts_a_tool_only_agent_step() -> None:
    traj = {"steps": [{"step_id": 1, "source": "agent", "message": "",
                       "tool_calls": [{"tool_call_id": "c", "function_name": "f", "arguments": {}}]}]}
    assert lost_conversation(traj) is None
