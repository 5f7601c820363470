"""LangChain messages, LangGraph state and update streams, and LangSmith runs to ATIF."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from atif.adapters import Converted, ConvertOptions, get_adapter
from atif.adapters.jsonio import dump_json
from atif.adapters.registry import detect
from atif.errors import AdapterError, ParseError
from atif.schema.validate import validate

ROOT = Path(__file__).resolve().parents[2]
LC = ROOT / "fixtures" / "langchain"
LS = ROOT / "fixtures" / "langsmith"

# The openai_chat scenario in every serialisation (see fixtures/langchain/README.md).
WITH_SYSTEM = ["messages_dict.json", "model_dump.json", "dumpd.json"]
STATE = "langgraph_state.json"
STREAMS = ["langgraph_updates_v1.json", "langgraph_updates_v2.json"]


def convert(path: Path, adapter: str = "langchain") -> list[Converted]:
    items = list(get_adapter(adapter).convert(path, ConvertOptions()))
    assert all(isinstance(i, Converted) for i in items), items
    return items  # type: ignore[return-value]


def one(path: Path, adapter: str = "langchain") -> dict[str, Any]:
    (item,) = convert(path, adapter)
    assert item.trajectory is not None
    report = validate(item.trajectory, mode="strict")
    assert report.valid, [str(i) for i in report.issues]
    return item.trajectory


def strip_ids(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps without step ids and per-message source ids, for comparing serialisations."""
    out = []
    for s in steps:
        s = {k: v for k, v in s.items() if k != "step_id"}
        extra = {k: v for k, v in (s.get("extra") or {}).items() if k != "message_id"}
        s.pop("extra", None)
        if extra:
            s["extra"] = extra
        out.append(s)
    return out


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(x) + "\n" for x in data))
    else:
        path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------------------------------
# Serialisations agree
# ---------------------------------------------------------------------------------------------


def test_every_serialisation_gives_the_same_steps() -> None:
    base = one(LC / WITH_SYSTEM[0])
    for name in WITH_SYSTEM[1:]:
        other = one(LC / name)
        assert other["steps"] == base["steps"], name
        assert other["session_id"] == base["session_id"]  # derived from the conversation, not the bytes
    # The graph state lacks the system prompt create_react_agent adds per model call.
    state = one(LC / STATE)
    assert strip_ids(state["steps"]) == strip_ids(base["steps"][1:])
    # Update streams lack the input message too; v1 and v2 replay to the same state.
    for name in STREAMS:
        assert strip_ids(one(LC / name)["steps"]) == strip_ids(base["steps"][2:]), name


def test_source_format_is_recorded() -> None:
    shapes = {
        "messages_dict.json": "langchain/messages_to_dict",
        "model_dump.json": "langchain/model_dump",
        "dumpd.json": "langchain/dumpd",
        STATE: "langchain/langgraph-state",
        "langgraph_updates_v1.json": "langchain/langgraph-updates-v1",
        "langgraph_updates_v2.json": "langchain/langgraph-updates-v2",
    }
    for name, fmt in shapes.items():
        (item,) = convert(LC / name)
        assert item.trial.metadata["source_format"] == fmt
        assert item.trajectory is not None and item.trajectory["extra"]["source_format"] == fmt


# ---------------------------------------------------------------------------------------------
# The mapping rules
# ---------------------------------------------------------------------------------------------


def test_tool_messages_merge_into_the_step_that_called_them() -> None:
    traj = one(LC / "model_dump.json")
    steps = traj["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent", "agent"]  # 8 messages, 3 tool
    first = steps[2]
    assert [c["tool_call_id"] for c in first["tool_calls"]] == [
        "call_WeatherParis01", "call_DivideZero02", "call_DivideTrunc03"
    ]
    results = first["observation"]["results"]
    assert [r["source_call_id"] for r in results] == ["call_WeatherParis01", "call_DivideZero02"]
    assert results[0]["content"] == "Paris: 18°C, light rain, wind 14 km/h"
    assert steps[3]["observation"]["results"][0] == {"source_call_id": "call_DivideRetry04", "content": "3.5"}
    assert "observation" not in steps[4]


def test_failed_tool_keeps_its_error() -> None:
    result = one(LC / "dumpd.json")["steps"][2]["observation"]["results"][1]
    assert result["source_call_id"] == "call_DivideZero02"
    assert result["extra"]["status"] == "error"
    assert "ZeroDivisionError" in result["extra"]["error"]
    assert "ZeroDivisionError" in result["content"]  # what the model was shown stays the content


def test_invalid_tool_call_is_kept_with_its_error() -> None:
    call = one(LC / "model_dump.json")["steps"][2]["tool_calls"][2]
    assert call["function_name"] == "divide"
    assert call["arguments"] == {"_raw": '{"a": 7, "b": '}
    assert call["extra"]["invalid"] is True
    assert "not valid JSON" in call["extra"]["error"]


def test_usage_and_cached_tokens() -> None:
    (item,) = convert(LC / "model_dump.json")
    traj = item.trajectory
    assert traj is not None
    assert [s.get("metrics") for s in traj["steps"][2:]] == [
        {"prompt_tokens": 412, "completion_tokens": 71, "cached_tokens": 0},
        {"prompt_tokens": 538, "completion_tokens": 46, "cached_tokens": 384},
        {"prompt_tokens": 603, "completion_tokens": 38, "cached_tokens": 512},
    ]
    assert traj["final_metrics"] == {
        "total_prompt_tokens": 1553, "total_completion_tokens": 155, "total_cached_tokens": 896, "total_steps": 5
    }
    t = item.trial
    assert (t.input_tokens, t.output_tokens, t.cached_tokens, t.steps) == (1553, 155, 896, 5)


def test_anthropic_input_tokens_include_the_cache() -> None:
    steps = one(LC / "langgraph_anthropic_state.json")["steps"]
    # usage_metadata.input_tokens = 96 fresh + 1184 cache write; then 161 + 1184 cache read.
    assert steps[1]["metrics"] == {
        "prompt_tokens": 1280, "completion_tokens": 118, "cached_tokens": 0,
        "extra": {"cache_creation_tokens": 1184},
    }
    assert steps[2]["metrics"] == {"prompt_tokens": 1345, "completion_tokens": 41, "cached_tokens": 1184}


def test_model_name_from_response_metadata() -> None:
    traj = one(LC / "model_dump.json")
    assert {s.get("model_name") for s in traj["steps"] if s["source"] == "agent"} == {"gpt-4o-2024-08-06"}
    assert traj["agent"]["model_name"] == "gpt-4o-2024-08-06"
    assert one(LC / "langgraph_anthropic_state.json")["agent"]["model_name"] == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize(
    ("name", "reasoning"),
    [
        ("langgraph_anthropic_state.json", "The user wants the weather in Tokyo."),  # thinking block
        ("langgraph_anthropic_v1_state.json", "The user wants the weather in Tokyo."),  # v1 reasoning block
        ("langgraph_openai_responses_state.json", "**Checking Berlin weather**"),  # Responses summary
        ("langgraph_deepseek_state.json", "The user asks about Lisbon."),  # reasoning_content
    ],
)
def test_reasoning_is_captured(name: str, reasoning: str) -> None:
    steps = one(LC / name)["steps"]
    agent = [s for s in steps if s["source"] == "agent"]
    assert agent[0]["reasoning_content"].startswith(reasoning)
    assert agent[1]["reasoning_content"]
    # Reasoning and tool-call blocks never leak into the message text.
    for s in agent:
        assert "signature" not in s["message"] and "summary_text" not in s["message"]


@pytest.mark.parametrize(
    "name",
    ["langgraph_anthropic_state.json", "langgraph_anthropic_v1_state.json", "langgraph_openai_responses_state.json"],
)
def test_tool_call_blocks_in_content_are_not_emitted_twice(name: str) -> None:
    steps = one(LC / name)["steps"]
    calls = [c for s in steps for c in s.get("tool_calls") or []]
    assert len(calls) == 1
    assert calls[0]["function_name"] == "get_weather"
    assert steps[1]["observation"]["results"][0]["source_call_id"] == calls[0]["tool_call_id"]


def test_tool_call_only_in_content_is_recovered(tmp_path: Path) -> None:
    msgs = [
        {"type": "human", "content": "weather?"},
        {"type": "ai", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ]},
        {"type": "tool", "content": "Oslo: 3°C", "tool_call_id": "toolu_1"},
    ]
    steps = one(write(tmp_path, "m.json", msgs))["steps"]
    assert steps[1]["message"] == "Checking."
    assert steps[1]["tool_calls"] == [
        {"tool_call_id": "toolu_1", "function_name": "get_weather", "arguments": {"city": "Oslo"}}
    ]
    assert steps[1]["observation"]["results"][0]["content"] == "Oslo: 3°C"


def test_update_stream_replays_add_messages(tmp_path: Path) -> None:
    ai = {"type": "ai", "content": "draft", "id": "a1"}
    chunks = [
        {"agent": {"messages": [ai]}},
        {"agent": {"messages": [{**ai, "content": "final"}]}},  # same id: replaces
        {"agent": {"messages": [{"type": "ai", "content": "oops", "id": "a2"}]}},
        {"cleanup": {"messages": [{"type": "remove", "content": "", "id": "a2"}]}},  # RemoveMessage
        {"__interrupt__": [{"value": "ask"}]},
        {"noop": None},
    ]
    (item,) = convert(write(tmp_path, "u.json", chunks))
    assert item.trajectory is not None
    assert [s["message"] for s in item.trajectory["steps"]] == ["final"]


def test_subgraph_chunks_are_not_counted_twice(tmp_path: Path) -> None:
    msg = {"type": "ai", "content": "from the subgraph", "id": "s1"}
    chunks = [
        [["child:1"], {"inner": {"messages": [msg]}}],  # v1 with subgraphs=True
        [[], {"child": {"messages": [msg]}}],
    ]
    steps = one(write(tmp_path, "sub.json", chunks))["steps"]
    assert [s["message"] for s in steps] == ["from the subgraph"]


def test_jsonl_of_messages(tmp_path: Path) -> None:
    msgs = json.loads((LC / "model_dump.json").read_text())
    path = write(tmp_path, "msgs.jsonl", msgs)
    assert get_adapter("langchain").sniff(path).ok
    assert one(path)["steps"] == one(LC / "model_dump.json")["steps"]


def test_task_name_and_trial_record() -> None:
    (item,) = convert(LC / STATE)
    trial = item.trial
    assert trial.task_name == "langgraph_state"  # the file's stem; overridable with options.extra["task_name"]
    assert item.trial_key == "langgraph_state"
    assert trial.duration_seconds is None  # a graph state carries no clock
    assert trial.metadata["source_path"] == str(LC / STATE)
    assert trial.messages is not None and trial.messages[0] == {
        "role": "user", "content": "What's the weather in Paris, and what are 10 / 0 and 7 / 2?"
    }
    assert [m["role"] for m in trial.messages] == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    custom = list(get_adapter("langchain").convert(LC / STATE, ConvertOptions(extra={"task_name": "weather"})))
    assert custom[0].trial.task_name == "weather"  # type: ignore[union-attr]


def test_conversion_is_deterministic() -> None:
    for name in [*WITH_SYSTEM, STATE, *STREAMS, "langgraph_anthropic_state.json"]:
        a, b = convert(LC / name), convert(LC / name)
        assert dump_json(a[0].trajectory) == dump_json(b[0].trajectory)
        assert a[0].trial.model_dump() == b[0].trial.model_dump()
        assert a[0].trajectory is not None and a[0].trajectory["session_id"] == b[0].trajectory["session_id"]  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# LangSmith
# ---------------------------------------------------------------------------------------------


def test_langsmith_tree_and_flat_export_agree() -> None:
    tree = one(LS / "run_tree.json", "langsmith")
    flat = one(LS / "runs.jsonl", "langsmith")
    assert tree["steps"] == flat["steps"]
    assert tree["extra"]["source_format"] == "langsmith/run-tree"
    assert flat["extra"]["source_format"] == "langsmith/runs"


def test_langsmith_system_prompt_timestamps_and_duration() -> None:
    (item,) = convert(LS / "runs.jsonl", "langsmith")
    traj = item.trajectory
    assert traj is not None
    steps = traj["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent", "agent"]
    assert steps[0]["message"].startswith("You are a concise assistant.")
    # The opening prompt takes the trace start; each agent step its model run's end.
    assert [s["timestamp"] for s in steps] == [
        "2025-06-02T09:30:00.004000Z",
        "2025-06-02T09:30:00.004000Z",
        "2025-06-02T09:30:01.664000Z",
        "2025-06-02T09:30:02.932000Z",
        "2025-06-02T09:30:03.944000Z",
    ]
    assert steps[2]["extra"]["run_id"] == "01972ff9-f5e4-716b-b145-e8d671f965b9"
    assert item.trial.duration_seconds == pytest.approx(3.968)
    assert item.trial.trial_id == item.trial_key == "01972ff9-f5c0-794c-8c76-db8cd8dcb35f"
    assert traj["session_id"] == "01972ff9-f5c0-794c-8c76-db8cd8dcb35f"
    assert traj["agent"]["name"] == "LangGraph" and traj["agent"]["version"] == "1.7.2"
    assert [t["function"]["name"] for t in traj["agent"]["tool_definitions"]] == ["get_weather", "divide"]
    assert item.trial.metadata["source_ids"]["project"] == "atif-fixtures"


def test_langsmith_failed_tool_run_error_in_extra() -> None:
    results = one(LS / "runs.jsonl", "langsmith")["steps"][2]["observation"]["results"]
    failed = results[1]
    assert failed["source_call_id"] == "call_DivideZero02"
    assert failed["extra"]["status"] == "error"
    assert failed["extra"]["error"].startswith("ZeroDivisionError('float division by zero')")
    assert "Traceback" in failed["extra"]["error"]
    assert results[0]["extra"] == {"run_id": "01972ff9-fc5c-76e1-9379-7bfe77bc394e"}


def test_langsmith_export_order_does_not_matter(tmp_path: Path) -> None:
    runs = [json.loads(line) for line in (LS / "runs.jsonl").read_text().splitlines()]
    random.Random(7).shuffle(runs)
    shuffled = one(write(tmp_path, "shuffled.jsonl", runs), "langsmith")
    assert shuffled["steps"] == one(LS / "runs.jsonl", "langsmith")["steps"]


def test_langsmith_one_trial_per_trace(tmp_path: Path) -> None:
    runs = [json.loads(line) for line in (LS / "runs.jsonl").read_text().splitlines()]
    text = json.dumps(runs)
    old_trace = runs[0]["trace_id"]
    new_trace = old_trace[:-4] + "beef"
    second = json.loads(text.replace(old_trace, new_trace))
    second[0]["error"] = "GraphRecursionError: Recursion limit of 12 reached"
    items = convert(write(tmp_path, "two.jsonl", runs + second), "langsmith")
    assert [i.trial_key for i in items] == [old_trace, new_trace]
    assert items[0].trial.error is None
    assert items[1].trial.error == "GraphRecursionError: Recursion limit of 12 reached"


# ---------------------------------------------------------------------------------------------
# Sniffing and bad input
# ---------------------------------------------------------------------------------------------


def test_each_langchain_shape_is_detected_by_langchain() -> None:
    for path in sorted(LC.glob("*.json")):
        if path.name.endswith(".atif.json"):
            continue
        adapter, _ = detect(path)
        assert adapter.name == "langchain", path


def test_langsmith_files_are_detected_by_langsmith_and_declined_by_langchain() -> None:
    for path in (LS / "runs.jsonl", LS / "run_tree.json"):
        adapter, _ = detect(path)
        assert adapter.name == "langsmith"
        verdict = get_adapter("langchain").sniff(path)
        assert not verdict.ok and "LangSmith run" in verdict.reason


def test_langchain_declines_other_formats_with_a_reason(tmp_path: Path) -> None:
    lc, ls = get_adapter("langchain"), get_adapter("langsmith")
    cases = {
        "openai.json": [{"role": "user", "content": "hi"}],
        "openai_obj.json": {"messages": [{"role": "user", "content": "hi"}]},
        "other.json": {"foo": 1},
        "empty.json": [],
    }
    for name, data in cases.items():
        path = write(tmp_path, name, data)
        for adapter in (lc, ls):
            verdict = adapter.sniff(path)
            assert not verdict.ok and verdict.reason, (adapter.name, name)
    assert "`role`" in lc.sniff(tmp_path / "openai.json").reason
    assert not lc.sniff(LS / "runs.jsonl").ok
    assert not ls.sniff(LC / "model_dump.json").ok
    assert not lc.sniff(tmp_path).ok  # a directory


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"type": "human", "content": "hi"},\n {"type": "ai", "content": ')
    verdict = get_adapter("langchain").sniff(path)
    assert not verdict.ok and "line 2" in verdict.reason
    with pytest.raises(ParseError) as exc:
        list(get_adapter("langchain").convert(path, ConvertOptions()))
    assert str(path) in str(exc.value) and "line 2" in str(exc.value)


def test_malformed_jsonl_line_names_the_line(tmp_path: Path) -> None:
    lines = (LS / "runs.jsonl").read_text().splitlines()
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join([lines[0], lines[1], lines[2][:50]]) + "\n")
    with pytest.raises(ParseError) as exc:
        list(get_adapter("langsmith").convert(path, ConvertOptions()))
    assert str(path) in str(exc.value) and "line 3" in str(exc.value)


def test_unknown_structure_is_declined_on_convert(tmp_path: Path) -> None:
    path = write(tmp_path, "x.json", {"messages": [{"foo": "bar"}]})
    with pytest.raises(AdapterError, match="not LangChain output"):
        list(get_adapter("langchain").convert(path, ConvertOptions()))
