"""The openai-agents and openai-agents-trace adapters over real Agents SDK output (fixtures/openai-agents)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atif.adapters import ConvertOptions, get_adapter
from atif.adapters.convert import convert
from atif.adapters.registry import detect

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "openai-agents"


def _one(path: Path, adapter: str) -> Any:
    (item,) = list(get_adapter(adapter).convert(path, ConvertOptions()))
    return item


def _shape(steps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["source"], s.get("message"), [c["function_name"] for c in s.get("tool_calls") or []],
             [r.get("source_call_id") for r in (s.get("observation") or {}).get("results", [])],
             (s.get("extra") or {}).get("agent")) for s in steps]


@pytest.mark.parametrize(("name", "adapter", "why"), [
    ("run_state.json", "openai-agents", "Agents SDK run-state schema 1.21 with 8 run items"),
    ("new_items.json", "openai-agents", "Agents SDK new-items with 8 run items"),
    ("trace.json", "openai-agents-trace", "Agents SDK trace export: 1 trace(s), 12 spans"),
])
def test_detected_with_a_reason(name: str, adapter: str, why: str) -> None:
    got, answers = detect(FIX / name)
    assert got.name == adapter
    assert answers[-1][1].reason == why


def test_run_state_maps_items_usage_agents_and_handoffs() -> None:
    item = _one(FIX / "run_state.json", "openai-agents")
    traj = item.trajectory
    state = json.loads((FIX / "run_state.json").read_text())
    steps = traj["steps"]
    assert _shape(steps) == [
        ("user", "What is the weather in Paris, and what is 7 divided by 2?", [], [], None),
        ("agent", "", ["transfer_to_weather"], ["call_handoff_1"], "triage"),
        ("agent", "I will look up the weather and do the division.", ["get_weather", "divide"],
         ["call_weather_1", "call_divide_1"], "weather"),
        ("agent", "Paris is sunny at 21 C with a light west wind, and 7 divided by 2 is 3.5.", [], [], "weather"),
    ]
    assert steps[1]["tool_calls"][0]["extra"] == {"handoff": True}
    assert [s["metrics"]["prompt_tokens"] for s in steps[1:]] == [r["usage"]["input_tokens"] for r in state["model_responses"]]
    usage = state["context"]["usage"]
    fm = traj["final_metrics"]
    assert (fm["total_prompt_tokens"], fm["total_completion_tokens"], fm["total_cached_tokens"]) == (
        usage["input_tokens"], usage["output_tokens"], usage["input_tokens_details"][0]["cached_tokens"])
    assert item.tally == {"read": 9, "mapped": 9, "skipped": 0, "skip_reasons": {}}
    assert traj["agent"]["model_name"] == "gpt-4.1-mini"


def test_new_items_give_the_same_conversation_as_the_run_state() -> None:
    a = _one(FIX / "new_items.json", "openai-agents").trajectory["steps"]
    b = _one(FIX / "run_state.json", "openai-agents").trajectory["steps"]
    assert _shape(a) == _shape(b)


def test_trace_rebuilds_the_conversation_from_generation_and_function_spans() -> None:
    item = _one(FIX / "trace.json", "openai-agents-trace")
    traj = item.trajectory
    assert [s["source"] for s in traj["steps"]] == ["system", "user", "agent", "system", "agent", "agent"]
    assert traj["steps"][3]["message"] == "You answer weather and arithmetic questions with your tools."
    assert traj["extra"]["handoffs"] == [{"from_agent": "triage", "to_agent": "weather"}]
    assert traj["extra"]["workflow_name"] == "weather desk"
    task = next(s for s in json.loads((FIX / "trace.json").read_text())["data"]
                if (s.get("span_data") or {}).get("name") == "task")["span_data"]["data"]["usage"]
    fm = traj["final_metrics"]
    assert (fm["total_prompt_tokens"], fm["total_completion_tokens"], fm["total_cached_tokens"]) == (
        task["input_tokens"], task["output_tokens"], task["cached_input_tokens"])
    results = traj["steps"][4]["observation"]["results"]
    assert [r["content"] for r in results] == ["Sunny, 21 C in Paris, light wind from the west", "3.5"]
    assert item.tally == {"read": 13, "mapped": 13, "skipped": 0, "skip_reasons": {}}


def test_unknown_run_items_are_skipped_and_listed_by_a_dry_run(tmp_path: Path) -> None:
    doc = json.loads((FIX / "new_items.json").read_text())
    doc["new_items"].insert(2, {"type": "future_widget_item", "agent": "weather", "raw_item": {"type": "widget"}})
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    result = convert([path], None, dry_run=True)
    (report,) = result.inputs
    assert report.adapter == "openai-agents"
    assert (report.records_read, report.records_mapped, report.records_skipped) == (10, 9, 1)
    assert report.skip_reasons == {"unknown run item type 'future_widget_item'": 1}
    assert any("new_items/2" in w for w in report.warnings)


def test_unknown_span_types_are_skipped(tmp_path: Path) -> None:
    doc = json.loads((FIX / "trace.json").read_text())
    span = dict(doc["data"][1], id="span_guard", span_data={"type": "guardrail", "name": "no_pii", "triggered": False})
    doc["data"].append(span)
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(doc))
    item = _one(path, "openai-agents-trace")
    assert item.tally["skip_reasons"] == {"span type 'guardrail'": 1}


def test_a_trace_without_generation_spans_keeps_function_calls_and_usage(tmp_path: Path) -> None:
    """What the Responses model exports: response spans (id, usage) and function spans only."""
    doc = json.loads((FIX / "trace.json").read_text())
    data = []
    for o in doc["data"]:
        sd = o.get("span_data") or {}
        if sd.get("type") == "generation":
            o = dict(o, span_data={"type": "response", "response_id": "resp_" + o["id"], "usage": sd["usage"]})
        data.append(o)
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"data": data}))
    traj = _one(path, "openai-agents-trace").trajectory
    calls = [c["function_name"] for s in traj["steps"] for c in s.get("tool_calls") or []]
    assert calls == ["get_weather", "divide"]
    results = [r["content"] for s in traj["steps"] for r in (s.get("observation") or {}).get("results", [])]
    assert results == ["Sunny, 21 C in Paris, light wind from the west", "3.5"]
    assert traj["final_metrics"]["total_prompt_tokens"] == 1070


@pytest.mark.parametrize("name", ["run_state.json", "trace.json"])
def test_a_truncated_file_is_one_clear_failure(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes((FIX / name).read_bytes()[:500])
    result = convert([path], None, source_format="openai-agents" if name == "run_state.json" else "openai-agents-trace",
                     dry_run=True)
    (failure,) = result.failures
    assert failure[0] == str(path)
    assert "ends early" in failure[1] and "\n" not in failure[1]
