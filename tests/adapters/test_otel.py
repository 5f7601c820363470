"""OpenTelemetry GenAI and OpenInference spans: the three GenAI content forms, nested agents, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from atif.adapters.convert import convert
from atif.adapters.registry import detect
from atif.cli import cli

OTEL = Path(__file__).resolve().parents[2] / "fixtures" / "otel"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(span_id: str, name: str, attrs: dict[str, Any], parent: str | None = None, start: int = 0,
         events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": name, "context": {"trace_id": f"0x{TRACE}", "span_id": f"0x{span_id}", "trace_state": "[]"},
            "kind": "SpanKind.INTERNAL", "parent_id": f"0x{parent}" if parent else None,
            "start_time": f"2025-10-06T10:00:{start:02d}.000000Z", "end_time": f"2025-10-06T10:00:{start:02d}.500000Z",
            "status": {"status_code": "UNSET"}, "attributes": attrs, "events": events or [], "links": [],
            "resource": {"attributes": {"service.name": "crew"}, "schema_url": ""}}


def write(tmp_path: Path, spans: list[dict[str, Any]], name: str = "trace.jsonl") -> Path:
    f = tmp_path / name
    f.write_text("".join(json.dumps(s) + "\n" for s in spans))
    return f


def trajectory(tmp_path: Path, f: Path) -> dict[str, Any]:
    result = convert([f], tmp_path / "out")
    assert result.converted == 1, result.failures
    return json.loads(next((tmp_path / "out" / "trajectories").rglob("*.json")).read_text())


@pytest.mark.parametrize("name", ["genai_spans.jsonl", "genai_otlp.json", "openinference_spans.jsonl",
                                  "openllmetry_spans.jsonl"])
def test_every_real_export_is_detected_and_gives_the_same_conversation(name: str, tmp_path: Path) -> None:
    adapter, answers = detect(OTEL / name)
    assert adapter.name == "otel" and ("GenAI" in answers[-1][1].reason or "OpenInference" in answers[-1][1].reason)
    doc = trajectory(tmp_path, OTEL / name)
    assert [s["source"] for s in doc["steps"]] == ["system", "user", "agent", "agent"]
    assert doc["steps"][2]["tool_calls"][0]["arguments"] == {"city": "Paris"}
    assert doc["steps"][2]["observation"]["results"][0]["source_call_id"] == "call_Wx1"
    assert doc["final_metrics"]["total_prompt_tokens"] == 237


def test_the_legacy_prompt_and_completion_attributes(tmp_path: Path) -> None:
    f = write(tmp_path, [span("a1", "openai.chat", {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be terse.",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "List files",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_1", "gen_ai.completion.0.tool_calls.0.name": "ls",
        "gen_ai.completion.0.tool_calls.0.arguments": "{\"path\": \".\"}",
        "gen_ai.usage.prompt_tokens": 30, "gen_ai.usage.completion_tokens": 8}),
        span("a2", "openai.chat", {
            "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be terse.",
            "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "List files",
            "gen_ai.prompt.2.role": "assistant", "gen_ai.prompt.2.tool_calls.0.id": "call_1",
            "gen_ai.prompt.2.tool_calls.0.name": "ls", "gen_ai.prompt.2.tool_calls.0.arguments": "{\"path\": \".\"}",
            "gen_ai.prompt.3.role": "tool", "gen_ai.prompt.3.tool_call_id": "call_1", "gen_ai.prompt.3.content": "a.py b.py",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "a.py and b.py",
            "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 6}, start=2)])
    doc = trajectory(tmp_path, f)
    assert [s["source"] for s in doc["steps"]] == ["system", "user", "agent", "agent"]
    assert doc["steps"][2]["observation"]["results"] == [{"content": "a.py b.py", "source_call_id": "call_1"}]
    assert doc["steps"][3]["message"] == "a.py and b.py"
    assert doc["final_metrics"]["total_prompt_tokens"] == 80


def test_the_event_form(tmp_path: Path) -> None:
    f = write(tmp_path, [span("b1", "chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12},
                              events=[
        {"name": "gen_ai.user.message", "timestamp": "2025-10-06T10:00:00Z", "attributes": {"content": "Hi there"}},
        {"name": "gen_ai.choice", "timestamp": "2025-10-06T10:00:01Z",
         "attributes": {"message": json.dumps({"content": "Hello!"}), "finish_reason": "stop"}}])])
    doc = trajectory(tmp_path, f)
    assert [(s["source"], s["message"]) for s in doc["steps"]] == [("user", "Hi there"), ("agent", "Hello!")]


def test_a_nested_agent_is_a_subagent_trajectory_and_a_tool_without_id_is_paired_by_name(tmp_path: Path) -> None:
    chat = {"gen_ai.operation.name": "chat"}
    f = write(tmp_path, [
        span("c0", "invoke_agent planner", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}),
        span("c1", "chat", {**chat, "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Plan a trip"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                {"type": "tool_call", "name": "search", "arguments": {"q": "Lisbon"}}]}])}, "c0", 1),
        span("c2", "execute_tool search", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                                           "gen_ai.tool.call.result": "Lisbon: sunny"}, "c0", 2),
        span("c3", "invoke_agent writer", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "writer"},
             "c0", 3),
        span("c4", "chat", {**chat, "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Write it up"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                {"type": "text", "content": "Go to Lisbon."}]}])}, "c3", 4),
    ])
    doc = trajectory(tmp_path, f)
    assert doc["agent"]["name"] == "planner"
    result = doc["steps"][1]["observation"]["results"][0]
    assert result["content"] == "Lisbon: sunny" and result["extra"] == {"paired_by": "name"}
    [sub] = doc["subagent_trajectories"]
    assert sub["agent"]["name"] == "writer" and sub["steps"][-1]["message"] == "Go to Lisbon."
    refs = [r for s in doc["steps"] for r in (s.get("observation") or {}).get("results", [])
            if r.get("subagent_trajectory_ref")]
    assert refs[0]["subagent_trajectory_ref"] == [{"trajectory_id": sub["trajectory_id"]}]


def test_spans_with_missing_parents_still_convert_with_a_warning(tmp_path: Path) -> None:
    lines = (OTEL / "genai_spans.jsonl").read_text().splitlines()
    f = tmp_path / "partial.jsonl"
    f.write_text("\n".join(lines[:-1]) + "\n")  # the invoke_agent root span is missing
    result = convert([f], None, dry_run=True)
    assert result.converted == 1
    assert any("parent that is not in the file" in w for w in result.inputs[0].warnings)


def test_a_bad_line_is_reported_with_its_number_and_the_rest_converts(tmp_path: Path) -> None:
    lines = (OTEL / "genai_spans.jsonl").read_text().splitlines()
    f = tmp_path / "cut.jsonl"
    f.write_text("\n".join(lines) + "\n" + lines[0][:30] + "\n")
    r = CliRunner().invoke(cli, ["convert", str(f), "--dry-run", "--format", "json"])
    assert r.exit_code == 0, r.output
    [inp] = json.loads(r.output)["inputs"]
    assert inp["trials"] == 1 and any(w.startswith(f"line {len(lines) + 1}:") for w in inp["warnings"])


def test_spans_of_other_kinds_are_counted_as_skipped(tmp_path: Path) -> None:
    spans = [json.loads(line) for line in (OTEL / "genai_spans.jsonl").read_text().splitlines()]
    spans.append(span("d9", "GET /health", {"http.method": "GET"}, start=59))
    spans[-1]["context"]["trace_id"] = spans[0]["context"]["trace_id"]
    r = CliRunner().invoke(cli, ["convert", str(write(tmp_path, spans)), "--dry-run"])
    assert "skipped 1 record: a span that is neither an agent, a model call nor a tool" in r.output


@pytest.mark.parametrize(("case", "data", "reason"), [
    ("no content captured", json.dumps(span("e1", "chat", {"gen_ai.operation.name": "chat",
                                                           "gen_ai.usage.input_tokens": 3})) + "\n", "no agent step"),
    ("binary garbage", "\x00\x01garbage\n", "no adapter recognises"),
])
def test_bad_span_files_fail_in_one_line_and_the_batch_goes_on(tmp_path: Path, case: str, data: str, reason: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(data)
    r = CliRunner().invoke(cli, ["convert", str(bad), str(OTEL / "genai_otlp.json"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and reason in failed[0] and "1 converted" in r.output
