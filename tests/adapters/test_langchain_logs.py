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


LANGCHAIN = ROOT / "fixtures" / "langchain"


def test_stream_parts_of_updates_and_messages_v2() -> None:
    path = LANGCHAIN / "langgraph_stream_multi_v2.json"
    adapter, answers = detect(path)
    assert adapter.name == "langchain", answers
    (item,) = list(get_adapter("langchain").convert(path, ConvertOptions()))
    traj = item.trajectory
    assert traj is not None
    assert traj["extra"]["source_format"] == "langchain/langgraph-messages+updates-v2"
    steps = traj["steps"]
    assert [s["source"] for s in steps] == ["agent", "agent"]  # the input is in no stream part
    assert sorted(r["source_call_id"] for r in steps[0]["observation"]["results"]) == ["call_divide_1", "call_weather_1"]
    parts = json.loads(path.read_text())
    assert item.tally == {"read": len(parts), "mapped": len(parts), "skipped": 0, "skip_reasons": {}}


def test_messages_parts_alone_give_the_same_steps(tmp_path: Path) -> None:
    parts = json.loads((LANGCHAIN / "langgraph_stream_multi_v2.json").read_text())
    only = tmp_path / "messages.json"
    only.write_text(json.dumps([p for p in parts if p["type"] == "messages"]))
    want = _steps(LANGCHAIN / "langgraph_stream_multi_v2.json", "langchain")
    assert _steps(only, "langchain") == want


def test_token_chunks_of_one_message_are_joined(tmp_path: Path) -> None:
    meta = {"langgraph_node": "model"}

    def chunk(content: str, **kw: Any) -> dict[str, Any]:
        return {"type": "messages", "ns": [], "data": [{"type": "AIMessageChunk", "id": "run-1", "content": content,
                                                        **kw}, meta]}

    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([
        chunk("Let me ", tool_call_chunks=[{"index": 0, "id": "c1", "name": "get_weather", "args": '{"ci'}]),
        chunk("check.", tool_call_chunks=[{"index": 0, "id": None, "name": None, "args": 'ty": "Oslo"}'}]),
        chunk("", usage_metadata={"input_tokens": 10, "output_tokens": 4, "total_tokens": 14}),
        {"type": "messages", "ns": [], "data": [{"type": "tool", "id": "t1", "tool_call_id": "c1",
                                                 "content": "rain"}, meta]},
        {"type": "custom", "ns": [], "data": {"progress": 1}},
    ]))
    (item,) = list(get_adapter("langchain").convert(path, ConvertOptions()))
    (step,) = item.trajectory["steps"]  # type: ignore[index]
    assert step["message"] == "Let me check."
    assert step["tool_calls"] == [{"tool_call_id": "c1", "function_name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert step["metrics"] == {"prompt_tokens": 10, "completion_tokens": 4}
    assert step["observation"]["results"][0]["content"] == "rain"
    assert item.tally == {"read": 5, "mapped": 4, "skipped": 1, "skip_reasons": {"stream part of mode 'custom'": 1}}


def test_astream_events_v2_read_as_runs() -> None:
    path = LANGSMITH / "astream_events_v2.json"
    adapter, _ = detect(path)
    assert adapter.name == "langsmith"
    assert "astream_events" in get_adapter("langchain").sniff(path).reason
    steps = _steps(path, "langsmith")
    assert _shape(steps) == _shape(_steps(LANGSMITH / "run_collector.json", "langsmith"))
    assert [r["source_call_id"] for r in steps[2]["observation"]["results"]] == ["call_weather_1", "call_divide_1"]


def test_unknown_events_are_counted_as_skipped(tmp_path: Path) -> None:
    events = json.loads((LANGSMITH / "astream_events_v2.json").read_text())
    events.insert(3, {"event": "on_custom_event", "name": "progress", "run_id": "x", "data": {"n": 1},
                      "parent_ids": [], "tags": [], "metadata": {}})
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    (item,) = list(get_adapter("langsmith").convert(path, ConvertOptions()))
    reason = "event 'on_custom_event' (not a run's start, stream or end)"
    assert item.tally == {"read": len(events), "mapped": len(events) - 1, "skipped": 1, "skip_reasons": {reason: 1}}
    assert any(reason in w for w in item.warnings)


def test_v1_tuples_of_several_modes_read_like_v2(tmp_path: Path) -> None:
    parts = json.loads((LANGCHAIN / "langgraph_stream_multi_v2.json").read_text())
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps([[p["type"], p["data"]] for p in parts]))
    (item,) = list(get_adapter("langchain").convert(v1, ConvertOptions()))
    assert item.trajectory["extra"]["source_format"] == "langchain/langgraph-messages+updates-v1"  # type: ignore[index]
    assert item.trajectory["steps"] == _steps(LANGCHAIN / "langgraph_stream_multi_v2.json", "langchain")  # type: ignore[index]
