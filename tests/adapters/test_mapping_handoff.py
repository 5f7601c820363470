"""A mapping can hand a standard message list to an existing adapter: the envelope from the mapping,
the conversation from the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert
from atif.adapters.mapping.spec import load_mapping
from atif.cli import cli
from atif.errors import AdapterError

MAPPING = """
name: evalbox
trials: runs
task_name: case
trial_id: run_id
reward: score
metadata:
  grader: grader
messages: traj
format: openai-chat
"""


def record(run_id: str, case: str, score: float) -> dict[str, object]:
    return {"run_id": run_id, "case": case, "score": score, "grader": "exact",
            "traj": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Solve {case}"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{\"x\": 2}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "4"},
                     {"role": "assistant", "content": "The answer is 4."}]}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    mapping = tmp_path / "evalbox.yaml"
    mapping.write_text(MAPPING)
    data = tmp_path / "export.json"
    data.write_bytes(orjson.dumps({"runs": [record("r1", "add-1", 1.0), record("r2", "add-2", 0.0)]}))
    return mapping, data


def test_the_envelope_comes_from_the_mapping_and_the_conversation_from_the_adapter(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    mapping, data = files
    result = convert([data], tmp_path / "out", mapping=mapping)
    assert result.converted == 2, result.failures
    trials = {t["trial_id"]: t for t in map(json.loads, (tmp_path / "out" / "trials.jsonl").read_text().splitlines())}
    assert trials["r1"]["task_name"] == "add-1" and trials["r1"]["reward"] == 1.0
    assert trials["r2"]["metadata"]["grader"] == "exact"
    assert trials["r1"]["metadata"]["conversation_format"] == "openai-chat"
    doc = json.loads((tmp_path / "out" / "trajectories" / "add-1" / "r1.json").read_text())
    assert [s["source"] for s in doc["steps"]] == ["system", "user", "agent", "agent"]
    assert doc["steps"][2]["observation"]["results"] == [{"content": "4", "source_call_id": "c1"}]
    assert result.inputs[0].records_read == 10  # the adapter counted the messages


def test_a_conversation_of_the_wrong_format_is_a_failure_naming_the_expression(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    mapping, data = files
    data.write_bytes(orjson.dumps({"runs": [record("r1", "add-1", 1.0), {"run_id": "r2", "case": "x", "traj": 7}]}))
    r = CliRunner().invoke(cli, ["convert", str(data), "--mapping", str(mapping), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "messages: 'traj': not OpenAI chat-completions messages" in r.output and "1 converted" in r.output


@pytest.mark.parametrize(("text", "reason"), [
    ("messages: traj\n", "messages and format go together"),
    ("messages: traj\nformat: harbor\n", "format is one of openai-chat"),
    ("messages: traj\nformat: openai-chat\nrules: [{skip: true}]\n", "rules: not used"),
])
def test_a_bad_hand_off_is_named_when_the_mapping_loads(tmp_path: Path, text: str, reason: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(AdapterError, match=reason):
        load_mapping(f)
