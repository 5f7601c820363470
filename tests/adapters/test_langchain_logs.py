"""Framework logs the LangChain adapters read beyond message lists: run-collector run trees with
prompt strings, LangGraph v2 stream parts, Harbor's LangGraph ``result.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atif.adapters import ConvertOptions, get_adapter
from atif.adapters.langchain.langsmith import buffer_messages
from atif.adapters.registry import detect

ROOT = Path(__file__).resolve().parents[2]
LANGSMITH = ROOT / "fixtures" / "langsmith"


def _steps(path: Path, adapter: str) -> list[dict[str, Any]]:
    out = list(get_adapter(adapter).convert(path, ConvertOptions()))
    assert len(out) == 1
    return out[0].trajectory["steps"]  # type: ignore[index, no-any-return]


def _shape(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["source"], str(s.get("message"))[:20]) for s in steps]


def test_run_collector_tree_keeps_the_system_prompt_and_puts_the_question_first() -> None:
    path = LANGSMITH / "run_collector.json"
    adapter, _ = detect(path)
    assert adapter.name == "langsmith"
    steps = _steps(path, "langsmith")
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent"]
    assert steps[0]["message"].startswith("You are a careful weather assistant")
    assert steps[1]["message"] == "What is the weather in Paris, and what is 7 divided by 2?"
    results = steps[2]["observation"]["results"]
    assert [r["source_call_id"] for r in results] == ["call_weather_1", "call_divide_1"]
    assert [r["content"] for r in results] == ["Sunny, 21 C in Paris, light wind from the west", "3.5"]
    assert steps[1]["timestamp"] <= steps[2]["timestamp"] <= steps[3]["timestamp"]


def _strip_order(run: dict[str, Any]) -> None:
    """An older tracer's run: no dotted_order, no trace_id; only start times order the children."""
    run.pop("dotted_order", None)
    run.pop("trace_id", None)
    for child in run.get("child_runs") or []:
        _strip_order(child)


def test_without_dotted_order_children_are_ordered_by_start_time(tmp_path: Path) -> None:
    tree = json.loads((LANGSMITH / "run_collector.json").read_text())
    _strip_order(tree)
    tree["child_runs"].reverse()  # the file's order must not matter
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(tree))
    want = _steps(LANGSMITH / "run_collector.json", "langsmith")
    assert _shape(_steps(path, "langsmith")) == _shape(want)


def test_buffer_string_is_split_into_messages() -> None:
    got = buffer_messages("System: be brief\nHuman: add 2\nand 3\nAI: 5\nTool: done")
    assert got == [
        {"kind": "system", "content": "be brief"},
        {"kind": "human", "content": "add 2\nand 3"},
        {"kind": "ai", "content": "5"},
        {"kind": "tool", "content": "done"},
    ]
    assert buffer_messages("no prefix at all") == [{"kind": "human", "content": "no prefix at all"}]


HARBOR_TRIAL = ROOT / "fixtures" / "harbor" / "langgraph-trial" / "hello-world__LgRph7Q"


def test_harbor_langgraph_trial_pairs_tool_results_by_position() -> None:
    (item,) = list(get_adapter("harbor").convert(HARBOR_TRIAL, ConvertOptions()))
    traj = item.trajectory
    assert traj is not None
    assert traj["extra"] == {"source_format": "harbor/langgraph", "tool_results_paired_by_position": 2}
    agent = traj["steps"][1]
    results = agent["observation"]["results"]
    assert [r["source_call_id"] for r in results] == [c["tool_call_id"] for c in agent["tool_calls"]]
    assert all(r["extra"] == {"paired_by": "position"} for r in results)
    assert any("paired with the oldest unanswered tool call" in w for w in item.warnings)
    assert item.tally == {"read": 5, "mapped": 5, "skipped": 0, "skip_reasons": {}}
    assert item.trial.metadata["trajectory_source"] == "agent/result.json"
    assert traj["agent"]["model_name"] == "scripted-gpt"


def _state(tmp_path: Path, messages: list[dict[str, Any]]) -> Path:
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"messages": messages}))
    return path


def _call(cid: str, name: str) -> dict[str, Any]:
    return {"name": name, "args": {"x": cid}, "id": cid, "type": "tool_call"}


def test_results_with_ids_are_linked_by_id_and_the_rest_by_position(tmp_path: Path) -> None:
    path = _state(tmp_path, [
        {"type": "human", "content": "go"},
        {"type": "ai", "content": "", "tool_calls": [_call("a", "f"), _call("b", "g"), _call("c", "h")]},
        {"type": "tool", "content": "answer of b", "tool_call_id": "b"},
        {"type": "tool", "content": "answer of a"},
        {"type": "tool", "content": "answer of c"},
        {"type": "ai", "content": "", "tool_calls": [_call("d", "f")]},
        {"type": "tool", "content": "answer of d"},
        {"type": "tool", "content": "one too many"},
    ])
    steps = _steps(path, "langchain")
    got = [(r.get("source_call_id"), r["content"], (r.get("extra") or {}).get("paired_by"))
           for s in steps for r in (s.get("observation") or {}).get("results", [])]
    assert got == [
        ("b", "answer of b", None), ("a", "answer of a", "position"), ("c", "answer of c", "position"),
        ("d", "answer of d", "position"), (None, "one too many", None),
    ]


def test_a_truncated_langgraph_result_is_a_failure_naming_the_file(tmp_path: Path) -> None:
    import shutil

    trial = tmp_path / HARBOR_TRIAL.name
    shutil.copytree(HARBOR_TRIAL, trial)
    bad = trial / "agent" / "result.json"
    bad.write_bytes(bad.read_bytes()[:200])
    (failure,) = list(get_adapter("harbor").convert(trial, ConvertOptions()))
    assert failure.source == str(bad)  # type: ignore[union-attr]
    assert "line" in failure.reason  # type: ignore[union-attr]
