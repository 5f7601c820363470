"""OpenAI chat-completions and Responses adapters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure
from atif.adapters.openai import OpenAIChatAdapter, OpenAIResponsesAdapter
from atif.adapters.registry import detect
from atif.schema.validate import validate

OPENAI = Path(__file__).resolve().parents[2] / "fixtures" / "openai"


def write(path: Path, obj: Any) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def one(adapter: Any, path: Path) -> Converted:
    out = list(adapter.convert(path, ConvertOptions()))
    assert len(out) == 1 and isinstance(out[0], Converted), out
    report = validate(out[0].trajectory, mode="strict")
    assert report.valid, [str(e) for e in report.errors]
    return out[0]


def call(cid: str, name: str, args: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


# -- detection -----------------------------------------------------------------------------------


def test_fixtures_are_detected_as_the_right_format() -> None:
    for name, fmt in [("chat_list.json", "openai-chat"), ("chat_object.json", "openai-chat"),
                      ("chat.jsonl", "openai-chat"), ("responses_items.json", "openai-responses")]:
        adapter, _ = detect(OPENAI / name)
        assert adapter.name == fmt, name


def test_chat_sniff_declines_other_shapes(tmp_path: Path) -> None:
    chat = OpenAIChatAdapter()
    assert not chat.sniff(write(tmp_path / "a.json", {"x": 1})).ok
    blocks = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]
    verdict = chat.sniff(write(tmp_path / "b.json", blocks))
    assert not verdict.ok and "Anthropic" in verdict.reason
    assert not chat.sniff(OPENAI / "responses_items.json").ok
    assert not chat.sniff(tmp_path).ok


def test_responses_sniff_needs_a_responses_marker(tmp_path: Path) -> None:
    resp = OpenAIResponsesAdapter()
    plain = write(tmp_path / "p.json", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert not resp.sniff(plain).ok
    assert not resp.sniff(OPENAI / "chat_list.json").ok
    assert resp.sniff(OPENAI / "responses_items.json").ok


# -- chat completions -----------------------------------------------------------------------------


def test_list_and_object_give_the_same_trajectory() -> None:
    a = one(OpenAIChatAdapter(), OPENAI / "chat_list.json")
    b = one(OpenAIChatAdapter(), OPENAI / "chat_object.json")
    assert a.trajectory == b.trajectory


def test_tool_messages_are_observations_not_steps() -> None:
    c = one(OpenAIChatAdapter(), OPENAI / "chat_list.json")
    steps = c.trajectory["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent"]
    calls = steps[2]["tool_calls"]
    assert [tc["arguments"] for tc in calls] == [{"city": "Paris"}, {"a": 10, "b": 0}]
    results = steps[2]["observation"]["results"]
    assert [r["source_call_id"] for r in results] == [tc["tool_call_id"] for tc in calls]
    assert results[1]["content"].startswith("Error: ZeroDivisionError")
    assert c.trial.steps == 4
    # messages round-trip to the chat shape, tool results as tool messages
    assert [m["role"] for m in c.trial.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]


def test_jsonl_gives_one_trial_per_line() -> None:
    out = list(OpenAIChatAdapter().convert(OPENAI / "chat.jsonl", ConvertOptions()))
    assert [o.trial_key for o in out] == ["chat-1", "chat-2", "chat-3"]
    third = out[2]
    assert isinstance(third, Converted)
    assert third.trajectory["agent"]["tool_definitions"][0]["function"]["name"] == "get_weather"
    agent_steps = [s for s in third.trajectory["steps"] if s["source"] == "agent"]
    assert agent_steps[0]["message"] == "Let me check Tokyo." and agent_steps[0]["tool_calls"]
    assert third.source.endswith("chat.jsonl:3")


def test_unparseable_arguments_are_kept_raw_with_a_warning(tmp_path: Path) -> None:
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", "{not json"), call("c2", "g", "[1]")]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    c = one(OpenAIChatAdapter(), write(tmp_path / "c.json", msgs))
    calls = c.trajectory["steps"][1]["tool_calls"]
    assert calls[0]["arguments"] == {"_raw": "{not json"}
    assert "not valid JSON" in calls[0]["extra"]["warnings"][0]
    assert calls[1]["arguments"] == {"_raw": "[1]"}
    assert len(c.warnings) == 2


def test_orphan_tool_result_and_duplicate_ids(tmp_path: Path) -> None:
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [call("c1", "f", "{}")]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "assistant", "tool_calls": [call("c1", "f", "{}")]},
        {"role": "tool", "tool_call_id": "zz", "content": "lost"},
    ]
    c = one(OpenAIChatAdapter(), write(tmp_path / "c.json", msgs))
    steps = c.trajectory["steps"]
    assert steps[2]["tool_calls"][0]["tool_call_id"] != "c1"
    assert steps[2]["tool_calls"][0]["extra"]["original_tool_call_id"] == "c1"
    orphan = steps[2]["observation"]["results"][0]
    assert "source_call_id" not in orphan and orphan["extra"]["unmatched_call_id"] == "zz"
    assert any("unknown call id 'zz'" in w for w in c.warnings)


def test_logged_call_with_choices_and_usage(tmp_path: Path) -> None:
    rec = {
        "id": "run-7", "model": "gpt-4o", "metadata": {"task_name": "greet"},
        "messages": [{"role": "developer", "content": "Be kind."}, {"role": "user", "content": "hi"}],
        "choices": [{"message": {"role": "assistant", "content": "hello", "reasoning_content": "easy"}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 40}},
    }
    c = one(OpenAIChatAdapter(), write(tmp_path / "c.json", rec))
    last = c.trajectory["steps"][-1]
    assert last["metrics"] == {"prompt_tokens": 50, "completion_tokens": 5, "cached_tokens": 40}
    assert last["reasoning_content"] == "easy"
    assert c.trajectory["steps"][0]["extra"] == {"role": "developer"}
    assert c.trajectory["agent"]["model_name"] == "gpt-4o"
    assert (c.trial.task_name, c.trial_key) == ("greet", "run-7")
    assert (c.trial.input_tokens, c.trial.cached_tokens, c.trial.output_tokens) == (50, 40, 5)


def test_legacy_function_call(tmp_path: Path) -> None:
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"x": 1}'}},
        {"role": "function", "name": "f", "content": "done"},
    ]
    c = one(OpenAIChatAdapter(), write(tmp_path / "c.json", msgs))
    step = c.trajectory["steps"][1]
    assert step["tool_calls"][0]["arguments"] == {"x": 1}
    assert step["observation"]["results"][0]["source_call_id"] == step["tool_calls"][0]["tool_call_id"]


def test_multimodal_user_content_becomes_text(tmp_path: Path) -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
            {"role": "assistant", "content": "A cat."}]
    c = one(OpenAIChatAdapter(), write(tmp_path / "c.json", msgs))
    assert c.trajectory["steps"][0]["message"] == "What is this?\n[image: https://x/cat.png]"


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    good = json.dumps({"messages": [{"role": "user", "content": "a"}]})
    path = write(tmp_path / "c.jsonl", f"{good}\n{{broken\n{good}\n")
    out = list(OpenAIChatAdapter().convert(path, ConvertOptions()))
    assert isinstance(out[0], Converted)
    assert isinstance(out[-1], Failure) and "line 2" in out[-1].reason


# -- responses -------------------------------------------------------------------------------------


def test_responses_items_of_the_agents_sdk() -> None:
    c = one(OpenAIResponsesAdapter(), OPENAI / "responses_items.json")
    steps = c.trajectory["steps"]
    assert [s["source"] for s in steps] == ["user", "agent", "agent"]
    first = steps[1]
    assert first["reasoning_content"].startswith("**Planning tool use**")
    assert [tc["function_name"] for tc in first["tool_calls"]] == ["get_weather", "divide"]
    assert [r["source_call_id"] for r in first["observation"]["results"]] == ["call_AgentParis01", "call_AgentDiv02"]
    assert steps[2]["message"].startswith("Paris: 18°C")
    assert steps[2]["reasoning_content"].startswith("**Composing answer**")


def test_response_object_with_instructions_and_usage(tmp_path: Path) -> None:
    rec = {
        "object": "response", "id": "resp_1", "model": "o4-mini", "instructions": "Be terse.",
        "input": "2+2?",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
            {"type": "message", "role": "assistant", "id": "msg_1",
             "content": [{"type": "output_text", "text": "4"}]},
        ],
        "usage": {"input_tokens": 30, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 10},
                  "output_tokens_details": {"reasoning_tokens": 6}},
    }
    c = one(OpenAIResponsesAdapter(), write(tmp_path / "r.json", rec))
    steps = c.trajectory["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent"]
    assert steps[2]["message"] == "4"
    assert steps[2]["metrics"] == {"prompt_tokens": 30, "completion_tokens": 9, "cached_tokens": 10,
                                   "extra": {"reasoning_tokens": 6}}
    assert steps[2]["extra"] == {"encrypted_reasoning": True, "message_id": "msg_1"}
    assert c.trial_key == "resp_1"


def test_responses_builtin_and_custom_tools(tmp_path: Path) -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "search"}]},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"query": "atif"}},
        {"type": "custom_tool_call", "call_id": "ct_1", "name": "patch", "input": "*** diff"},
        {"type": "custom_tool_call_output", "call_id": "ct_1", "output": "applied"},
    ]
    c = one(OpenAIResponsesAdapter(), write(tmp_path / "r.json", items))
    agent = c.trajectory["steps"][1]
    assert [(tc["tool_call_id"], tc["function_name"]) for tc in agent["tool_calls"]] == [
        ("ws_1", "web_search"), ("ct_1", "patch")]
    assert agent["tool_calls"][0]["arguments"] == {"action": {"query": "atif"}}
    assert agent["tool_calls"][1]["arguments"] == {"input": "*** diff"}
    assert agent["observation"]["results"][0]["source_call_id"] == "ct_1"


def test_a_list_of_request_bodies_of_one_run_is_one_trial(tmp_path: Path) -> None:
    """Issue 12: each call of a run logged as its request (+ response) is a prefix of the next one."""
    from atif.adapters.convert import convert

    system = {"role": "system", "content": "Be brief."}
    user = {"role": "user", "content": "2+2?"}
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{\"e\": \"2+2\"}"}}]}
    result_msg = {"role": "tool", "tool_call_id": "c1", "content": "4"}
    requests = [
        {"model": "gpt-4o", "messages": [system, user],
         "choices": [{"message": call}], "usage": {"prompt_tokens": 20, "completion_tokens": 9}},
        {"model": "gpt-4o", "messages": [system, user, call, result_msg],
         "choices": [{"message": {"role": "assistant", "content": "4"}}],
         "usage": {"prompt_tokens": 35, "completion_tokens": 2}},
    ]
    f = tmp_path / "calls.json"
    f.write_text(json.dumps(requests))
    result = convert([f], tmp_path / "out")
    assert result.converted == 1, result.failures
    assert result.inputs[0].skip_reasons == {
        "an earlier request of the same run (the last request repeats its messages)": 1}
    doc = json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())
    assert [s["source"] for s in doc["steps"]] == ["system", "user", "agent", "agent"]
    assert doc["steps"][-1]["message"] == "4"
    assert [s.get("metrics", {}).get("prompt_tokens") for s in doc["steps"][2:]] == [20, 35]  # each call's usage kept
