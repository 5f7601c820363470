"""The fidelity property over every golden fixture of every adapter (see ``fidelity_check``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from fidelity_check import Needle, missing, needles

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"

_spec = importlib.util.spec_from_file_location("golden_cases", ROOT / "tests" / "adapters" / "test_golden.py")
assert _spec is not None and _spec.loader is not None
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

# Source values that are not conversation although they sit under a conversational key, or that
# an adapter drops on purpose: case -> {value: why}. Every entry is a decision, written down.
_ROUTE = "a LangGraph conditional edge's routing value, not conversation"
_HARBOR_USAGE = "Harbor's per-model and per-job usage sums; the trial's own totals come from its trajectory"
KNOWN: dict[str, dict[str, str]] = {
    "langsmith/run_tree": {"__end__": _ROUTE},
    "langsmith/runs": {"__end__": _ROUTE},
    "harbor/jobs/2026-11-21__09-30-00": {"2252": _HARBOR_USAGE, "11641": _HARBOR_USAGE},
    "harbor/single-trial/hello-world__RbBvAUC": {"6502": _HARBOR_USAGE},
    # Claude Code writes each block of a streamed reply as its own record, each with the usage so far;
    # the last record of the message carries the reply's usage, which the agent step keeps.
    "claude-code/project": {"9": "usage of a streamed reply's earlier block records, superseded by its last"},
    # Real Claude Code 2.1 output: a Read result's ``toolUseResult`` is the tool's structured copy of the
    # file; the model saw it line-numbered in the ``tool_result`` text, which is the observation.
    "claude-code/real": {"first line teh second line third line": "toolUseResult: the Read tool's structured copy"},
    "openhands/fix_slugify": {
        "You are OpenHands agent...": "the system action's display summary; its full text is the system step",
        "Retrieving content for: slugify": "a recall event (runtime state), counted as skipped",
        "workspace_context": "a recall event (runtime state), counted as skipped",
        "agent_state_changed": "agent state events (runtime state), counted as skipped",
    },
    "mapping/crewlite_export": {
        str(n): "docs/mappings/crewlite.yaml sums the cache into prompt_tokens and keeps no cache-creation count"
        for n in (212, 305, 498, 190)
    },
}


def _outputs(out: Path) -> list[object]:
    docs: list[object] = [json.loads(p.read_bytes()) for p in sorted((out / "trajectories").rglob("*.json"))]
    for name in ("trials.jsonl", "tasks.jsonl"):
        f = out / name
        if f.is_file():
            docs.extend(json.loads(line) for line in f.read_text().splitlines() if line.strip())
    return docs


@pytest.mark.parametrize("expected", golden._cases(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_text_call_result_and_token_count_survives(expected: Path, tmp_path: Path) -> None:
    raw = golden._case_input(expected)
    golden.run_case(raw, golden._options(expected), tmp_path / "out")
    case = str(expected.relative_to(FIXTURES)).removesuffix(".atif.json")
    lost = missing(raw, _outputs(tmp_path / "out"), set(KNOWN.get(case, {})))
    assert not lost, "\n".join(map(str, lost))


def test_the_checker_finds_a_dropped_text_a_dropped_call_and_a_dropped_count(tmp_path: Path) -> None:
    src = tmp_path / "chat.json"
    src.write_text(json.dumps({"messages": [
        {"role": "user", "content": "what is the weather"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21C"},
    ], "usage": {"prompt_tokens": 123, "completion_tokens": 45}}))
    assert [str(n.value) for n in needles(src)] == [
        "what is the weather", "get_weather", "Paris", "sunny, 21C", "123", "45"]
    out = {"steps": [{"message": "what is the weather"},
                     {"tool_calls": [{"function_name": "get_weather", "arguments": {"city": "Paris"}}]}],
           "final_metrics": {"total_prompt_tokens": 123}}
    assert [n.value for n in missing(src, [out])] == ["sunny, 21C", 45]


def test_needle_reads_well() -> None:
    assert str(Needle("text", "hi", "a.json/messages/0/content")) == "text 'hi' at a.json/messages/0/content"


def test_a_prompt_string_is_read_message_by_message(tmp_path: Path) -> None:
    src = tmp_path / "run.json"
    prompt = ("System: be brief\nHuman: add 2\nand 3\nAI: adding.[{'name': 'add', 'args': {}, 'id': 'c', "
              "'type': 'tool_call'}]\nTool: 5")
    src.write_text(json.dumps({"run_type": "llm", "inputs": {"prompts": [prompt]}}))
    assert [n.value for n in needles(src)] == ["be brief", "add 2 and 3", "adding.", "5"]
    assert [n.value for n in missing(src, [{"steps": [{"message": "add 2\nand 3"}, {"message": "adding."},
                                                      {"content": "5"}]}])] == ["be brief"]
