"""What a span says, under the OpenTelemetry GenAI and OpenInference semantic conventions.

Each function reads one :class:`~atif.adapters.otel.spans.Span` and returns plain values:
its role in the agent (:func:`span_kind`), the messages of a model call (:func:`llm_call`),
a tool execution (:func:`tool_run`). Message content is read from, in this order:

* GenAI (current): ``gen_ai.system_instructions``, ``gen_ai.input.messages``,
  ``gen_ai.output.messages`` (JSON: ``[{"role", "parts": [{"type": "text" | "tool_call" |
  "tool_call_response" | "reasoning", ...}]}]``);
* GenAI (events, semconv 1.28-1.36): span events ``gen_ai.system.message``,
  ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message``, ``gen_ai.choice``;
* GenAI (legacy attributes, e.g. OpenLLMetry): ``gen_ai.prompt.N.role|content|tool_calls.M.*``,
  ``gen_ai.completion.N.*``;
* OpenInference: ``llm.input_messages.N.message.role|content|contents|tool_calls``,
  ``llm.output_messages.N.message.*``; tools ``tool.name``, ``tool.parameters``/``input.value``,
  ``output.value``.

Token counts: ``gen_ai.usage.input_tokens`` (or ``prompt_tokens``), ``output_tokens`` (or
``completion_tokens``), ``cache_read.input_tokens`` (or ``cache_read_input_tokens``);
OpenInference ``llm.token_count.prompt|completion|prompt_details.cache_read``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from atif.adapters.otel.spans import Span, unflatten
from atif.adapters.values import obj, text_of

__all__ = ["Message", "llm_call", "span_kind", "tool_run"]

_LLM_OPS = {"chat", "text_completion", "generate_content", "completion"}
_AGENT_OPS = {"invoke_agent", "create_agent"}


@dataclass(slots=True)
class Message:
    """One message of a model call, whatever convention it was written in."""

    role: str
    text: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[Any, Any, Any]] = field(default_factory=list)
    """``(id, name, arguments)`` per call."""
    tool_call_id: Any = None
    """For a tool message: the call it answers."""


def _json(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def span_kind(span: Span) -> str | None:
    """``agent``, ``llm``, ``tool`` or None (a span that carries no conversation)."""
    a = span.attributes
    oi = a.get("openinference.span.kind")
    if isinstance(oi, str):
        return {"AGENT": "agent", "LLM": "llm", "TOOL": "tool"}.get(oi.upper())
    op = a.get("gen_ai.operation.name")
    if op in _AGENT_OPS:
        return "agent"
    if op == "execute_tool":
        return "tool"
    if op in _LLM_OPS or any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.", "gen_ai.input.messages"))
                             for k in a) or any(str(e.get("name", "")).startswith("gen_ai.") for e in span.events):
        return "llm"
    return None


def _genai_parts(message: Any) -> Message:
    m = obj(message)
    out = Message(role=str(m.get("role") or "user"))
    texts: list[str] = []
    for p in m.get("parts") or []:
        p = obj(p)
        t = p.get("type")
        if t == "text":
            texts.append(str(p.get("content") or ""))
        elif t == "reasoning":
            out.reasoning = "\n".join(x for x in (out.reasoning, str(p.get("content") or "")) if x)
        elif t == "tool_call":
            out.tool_calls.append((p.get("id"), p.get("name"), p.get("arguments")))
        elif t == "tool_call_response":
            out.tool_call_id = p.get("id")
            resp = p.get("response")
            texts.append(resp if isinstance(resp, str) else orjson.dumps(resp).decode())
        elif p.get("content") is not None:
            texts.append(text_of(p.get("content")))
    out.text = "\n".join(t for t in texts if t)
    return out


def _flat_message(m: Any, *, nested: bool) -> Message:
    """A message from unflattened attributes (legacy GenAI when not nested, OpenInference ``message.*``)."""
    m = obj(obj(m).get("message")) if nested else obj(m)
    text = m.get("content")
    if not isinstance(text, str):
        text = "\n".join(text_of(obj(c).get("message_content") or c) for c in m.get("contents") or [])
    calls = []
    for tc in m.get("tool_calls") or []:
        tc = obj(tc)
        tc = obj(tc.get("tool_call")) or tc
        fn = obj(tc.get("function")) or tc
        calls.append((tc.get("id"), fn.get("name"), fn.get("arguments")))
    return Message(role=str(m.get("role") or "user"), text=text or "", tool_calls=calls,
                   tool_call_id=m.get("tool_call_id"))


def _event_message(event: dict[str, Any]) -> Message | None:
    name = str(event.get("name") or "")
    a = obj(event.get("attributes"))
    body = _json(a.get("gen_ai.event.content") or a.get("content") or a.get("body"))
    if name == "gen_ai.choice":
        msg = obj(obj(body).get("message")) or obj(_json(a.get("message")))
        return _chat_message({"role": "assistant", **msg})
    role = name.removeprefix("gen_ai.").removesuffix(".message")
    if role not in ("system", "user", "assistant", "tool"):
        return None
    if isinstance(body, dict):
        return _chat_message({"role": role, **body})
    return Message(role=role, text=text_of(body), tool_call_id=a.get("id"))


def _chat_message(m: dict[str, Any]) -> Message:
    calls = [(tc.get("id"), obj(tc.get("function")).get("name"), obj(tc.get("function")).get("arguments"))
             for tc in (m.get("tool_calls") or []) if isinstance(tc, dict)]
    return Message(role=str(m.get("role") or "user"), text=text_of(m.get("content")), tool_calls=calls,
                   tool_call_id=m.get("id") if m.get("role") == "tool" else m.get("tool_call_id"))


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _metrics(a: dict[str, Any]) -> dict[str, Any] | None:
    def first(*keys: str) -> int | None:
        return next((_int(a[k]) for k in keys if _int(a.get(k)) is not None), None)

    m = {
        "prompt_tokens": first("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
        "completion_tokens": first("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                                   "llm.token_count.completion"),
        "cached_tokens": first("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                               "llm.token_count.prompt_details.cache_read"),
    }
    out = {k: v for k, v in m.items() if v is not None}
    return out or None


def llm_call(span: Span) -> tuple[list[Message], list[Message], dict[str, Any] | None, str | None]:
    """``(input messages, output messages, step metrics, response model)`` of a model-call span.

    System instructions given apart (``gen_ai.system_instructions``) come first as a system message.
    """
    a = span.attributes
    inputs: list[Message] = []
    outputs: list[Message] = []
    if "gen_ai.input.messages" in a or "gen_ai.output.messages" in a:
        system = _json(a.get("gen_ai.system_instructions"))
        if system:
            parts = system if isinstance(system, list) else [{"type": "text", "content": system}]
            inputs.append(_genai_parts({"role": "system", "parts": parts}))
        inputs += [_genai_parts(m) for m in _json(a.get("gen_ai.input.messages")) or [] if isinstance(m, dict)]
        outputs = [_genai_parts(m) for m in _json(a.get("gen_ai.output.messages")) or [] if isinstance(m, dict)]
    elif any(k.startswith(("llm.input_messages.", "llm.output_messages.")) for k in a):
        inputs = [_flat_message(m, nested=True) for m in unflatten(a, "llm.input_messages") or []]
        outputs = [_flat_message(m, nested=True) for m in unflatten(a, "llm.output_messages") or []]
    elif any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in a):
        inputs = [_flat_message(m, nested=False) for m in unflatten(a, "gen_ai.prompt") or []]
        outputs = [_flat_message(m, nested=False) for m in unflatten(a, "gen_ai.completion") or []]
    else:
        for e in span.events:
            msg = _event_message(e)
            if msg is not None:
                (outputs if e.get("name") == "gen_ai.choice" else inputs).append(msg)
    model = a.get("gen_ai.response.model") or a.get("llm.model_name") or a.get("gen_ai.request.model")
    return inputs, outputs, _metrics(a), model if isinstance(model, str) else None


def tool_run(span: Span) -> tuple[Any, str, Any, Any]:
    """``(call id, tool name, arguments, result)`` of a tool span."""
    a = span.attributes
    name = a.get("gen_ai.tool.name") or a.get("tool.name") or span.name.removeprefix("execute_tool ").strip()
    call_id = a.get("gen_ai.tool.call.id") or a.get("tool_call.id") or a.get("tool.id")
    args = _json(a.get("gen_ai.tool.call.arguments") or a.get("input.value") or a.get("tool.parameters"))
    result = a.get("gen_ai.tool.call.result", a.get("output.value"))
    return call_id, str(name or "unknown"), args, result
