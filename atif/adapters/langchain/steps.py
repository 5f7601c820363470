"""LangChain messages to ATIF steps: content parts, reasoning, usage, tool calls and tool results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atif.adapters.builder import TrajectoryBuilder, tool_call
from atif.adapters.values import (
    image_part,
    parse_arguments,
    text_of,
    without_none,
)

_TOOL_BLOCKS = ("tool_use", "function_call", "tool_call")


def _image_part(block: Mapping[str, Any]) -> dict[str, Any] | None:
    """An ATIF image part from an OpenAI, Anthropic or LangChain image block (None if unusable)."""
    btype = block.get("type")
    url: str | None = None
    media: str | None = None
    if btype == "image_url":
        iu = block.get("image_url")
        url = iu.get("url") if isinstance(iu, Mapping) else iu if isinstance(iu, str) else None
    elif btype == "image":
        src = block.get("source")
        if isinstance(src, Mapping):  # Anthropic
            media = src.get("media_type")
            if src.get("type") == "base64" and src.get("data"):
                url = f"data:{media};base64,{src['data']}"
            else:
                url = src.get("url")
        elif block.get("url"):
            url, media = block.get("url"), block.get("mime_type")
        elif block.get("base64") or block.get("data"):
            media = block.get("mime_type")
            url = f"data:{media};base64,{block.get('base64') or block.get('data')}"
        elif isinstance(block.get("file_id"), str):
            url, media = f"file-id:{block['file_id']}", block.get("mime_type")
    return image_part(url, media)


def _message_content(content: Any) -> str | list[dict[str, Any]]:
    """The text of a message, or text and image parts when it holds images."""
    if not isinstance(content, list):
        return text_of(content)
    parts: list[dict[str, Any]] = []
    has_image = False
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
        elif isinstance(block, Mapping):
            btype = block.get("type")
            if btype in ("image_url", "image"):
                img = _image_part(block)
                if img is not None:
                    parts.append(img)
                    has_image = True
                else:
                    parts.append({"type": "text", "text": "[image]"})
            else:
                t = text_of([block])
                if t:
                    parts.append({"type": "text", "text": t})
    if has_image:
        return parts
    return "\n".join(p["text"] for p in parts)


def _reasoning(msg: Mapping[str, Any]) -> str | None:
    """Reasoning of an AI message: thinking / reasoning blocks and ``reasoning_content``."""
    found: list[str] = []

    def add(text: Any) -> None:
        if isinstance(text, str) and text.strip() and text not in found:
            found.append(text)

    content = msg.get("content")
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, Mapping):
                continue
            btype = block.get("type")
            if btype == "thinking":
                add(block.get("thinking"))
            elif btype == "reasoning":
                add(block.get("reasoning"))  # LangChain v1 standard block
                add(_summary_text(block))  # OpenAI Responses item
    kwargs = msg.get("additional_kwargs") or {}
    if isinstance(kwargs, Mapping):
        add(kwargs.get("reasoning_content"))
        if isinstance(kwargs.get("reasoning"), Mapping):
            add(_summary_text(kwargs["reasoning"]))
        elif isinstance(kwargs.get("reasoning"), str):
            add(kwargs["reasoning"])
    return "\n\n".join(found) or None


def _summary_text(item: Mapping[str, Any]) -> str | None:
    texts: list[str] = []
    for key in ("summary", "content"):
        seq = item.get(key)
        if isinstance(seq, list):
            texts.extend(str(p["text"]) for p in seq if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return "\n\n".join(t for t in texts if t) or None


def _metrics(msg: Mapping[str, Any]) -> dict[str, Any] | None:
    """Step metrics from ``usage_metadata``, else from the provider usage in ``response_metadata``."""
    um = msg.get("usage_metadata")
    extra: dict[str, Any] = {}
    if isinstance(um, Mapping) and (um.get("input_tokens") is not None or um.get("output_tokens") is not None):
        det = um.get("input_token_details") or {}
        out_det = um.get("output_token_details") or {}
        if isinstance(det, Mapping):
            # langchain-anthropic reports cache writes by TTL and leaves cache_creation at 0.
            writes = sum(
                v for k in ("cache_creation", "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
                if isinstance(v := det.get(k), int)
            )
            if writes:
                extra["cache_creation_tokens"] = writes
        if isinstance(out_det, Mapping) and out_det.get("reasoning"):
            extra["reasoning_tokens"] = out_det["reasoning"]
        return without_none({
            "prompt_tokens": um.get("input_tokens"),
            "completion_tokens": um.get("output_tokens"),
            "cached_tokens": det.get("cache_read") if isinstance(det, Mapping) else None,
            "extra": extra or None,
        })
    meta = msg.get("response_metadata") or {}
    if not isinstance(meta, Mapping):
        return None
    usage = meta.get("token_usage") or meta.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return provider_usage(usage)


def provider_usage(usage: Mapping[str, Any]) -> dict[str, Any] | None:
    """Metrics from an OpenAI chat, OpenAI Responses or Anthropic usage object."""
    if "prompt_tokens" in usage:  # OpenAI chat: prompt_tokens include cached ones
        det = usage.get("prompt_tokens_details") or {}
        return without_none({
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "cached_tokens": det.get("cached_tokens") if isinstance(det, Mapping) else None,
        })
    if "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:
        # Anthropic: input_tokens exclude both cache reads and cache writes.
        read = usage.get("cache_read_input_tokens") or 0
        write = usage.get("cache_creation_input_tokens") or 0
        return without_none({
            "prompt_tokens": (usage.get("input_tokens") or 0) + read + write,
            "completion_tokens": usage.get("output_tokens"),
            "cached_tokens": read,
        })
    if "input_tokens" in usage:  # OpenAI Responses: input_tokens include cached ones
        det = usage.get("input_tokens_details") or {}
        return without_none({
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "cached_tokens": det.get("cached_tokens") if isinstance(det, Mapping) else None,
        })
    return None


def _model_name(msg: Mapping[str, Any]) -> str | None:
    meta = msg.get("response_metadata") or {}
    if isinstance(meta, Mapping):
        for key in ("model_name", "model", "model_id"):
            if isinstance(meta.get(key), str) and meta[key]:
                return str(meta[key])
    return None


def _raw_tool_calls(msg: Mapping[str, Any]) -> list[tuple[Any, Any, Any, dict[str, Any] | None]]:
    """``(id, name, arguments, extra)`` of every tool call of an AI message, each once.

    ``.tool_calls`` and ``.invalid_tool_calls`` come first; calls found only in content
    blocks or in ``additional_kwargs`` (older serialisations) are added when their id is new.
    """
    calls: list[tuple[Any, Any, Any, dict[str, Any] | None]] = []
    ids: set[str] = set()

    def add(cid: Any, name: Any, args: Any, extra: dict[str, Any] | None = None) -> None:
        if cid is not None and str(cid) in ids:
            return
        if cid is not None:
            ids.add(str(cid))
        calls.append((cid, name, args, extra))

    for tc in msg.get("tool_calls") or []:
        if isinstance(tc, Mapping):
            add(tc.get("id"), tc.get("name"), tc.get("args"))
    for tc in msg.get("invalid_tool_calls") or []:
        if isinstance(tc, Mapping):
            # The raw text is kept as given: it failed to parse, which is the point of the record.
            args = tc.get("args")
            parsed, bad = parse_arguments(args)
            add(tc.get("id"), tc.get("name"), {"_raw": args} if bad else parsed,
                without_none({"invalid": True, "error": tc.get("error")}))
    content = msg.get("content")
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, Mapping) or block.get("type") not in _TOOL_BLOCKS:
                continue
            btype = block["type"]
            if btype == "tool_use":
                add(block.get("id"), block.get("name"), block.get("input"))
            elif btype == "function_call":
                add(block.get("call_id") or block.get("id"), block.get("name"), block.get("arguments"))
            else:
                add(block.get("id"), block.get("name"), block.get("args"))
    kwargs = msg.get("additional_kwargs") or {}
    if isinstance(kwargs, Mapping):
        for tc in kwargs.get("tool_calls") or []:
            if isinstance(tc, Mapping) and isinstance(tc.get("function"), Mapping):
                add(tc.get("id"), tc["function"].get("name"), tc["function"].get("arguments"))
        fc = kwargs.get("function_call")
        if isinstance(fc, Mapping) and not calls:
            add(None, fc.get("name"), fc.get("arguments"), {"legacy_function_call": True})
    return calls


@dataclass(slots=True)
class Timed:
    """Run-tree context of one message: when it happened and which run produced it."""

    timestamp: str | None = None
    model_name: str | None = None
    metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tool_error: str | None = None


def build_steps(
    builder: TrajectoryBuilder,
    messages: list[dict[str, Any]],
    timing: Mapping[int, Timed] | None = None,
) -> int:
    """Append the steps of a normalised message list to ``builder``; return how many tool results
    were paired with their call by position (see :func:`_tool_result`).

    ``timing`` maps a message's index to run-tree context (LangSmith) when there is one. Every
    message counts as one record read (and mapped) in the builder's accounting.
    """
    timing = timing or {}
    calls = _Calls()
    for i, msg in enumerate(messages):
        kind = msg["kind"]
        builder.count()
        ctx = timing.get(i) or Timed()
        extra = without_none({"message_id": msg.get("id"), "name": msg.get("name")})
        extra.update(ctx.extra)
        if kind == "system":
            builder.system(_message_content(msg.get("content")), timestamp=ctx.timestamp, extra=extra or None)
        elif kind in ("human", "chat"):
            if kind == "chat":
                extra["role"] = msg.get("role")
            builder.user(_message_content(msg.get("content")), timestamp=ctx.timestamp, extra=extra or None)
        elif kind == "ai":
            _agent_step(builder, msg, ctx, extra, calls)
        elif kind in ("tool", "function"):
            _tool_result(builder, msg, ctx, calls)
    if calls.by_position:
        builder.warnings.append(
            f"{calls.by_position} tool result(s) carry no tool_call_id; each was paired with the "
            "oldest unanswered tool call (by position)"
        )
    return calls.by_position


@dataclass(slots=True)
class _Calls:
    """Tool calls not answered yet, in the order they were made."""

    pending: list[str] = field(default_factory=list)
    by_name: dict[str, list[str]] = field(default_factory=dict)
    """Legacy FunctionMessages name their function, not a call id."""
    by_position: int = 0

    def answered(self, call_id: str) -> None:
        if call_id in self.pending:
            self.pending.remove(call_id)
        for ids in self.by_name.values():
            if call_id in ids:
                ids.remove(call_id)


def _agent_step(
    builder: TrajectoryBuilder,
    msg: Mapping[str, Any],
    ctx: Timed,
    extra: dict[str, Any],
    pending: _Calls,
) -> None:
    calls = []
    for n, (cid, name, args, call_extra) in enumerate(_raw_tool_calls(msg), 1):
        if cid in (None, ""):
            cid = f"call_{len(builder) + 1}_{n}"
        call, warning = tool_call(cid, name, args, extra=call_extra)
        if warning:
            builder.warnings.append(f"tool call {cid!r}: {warning}")
        calls.append(call)
    meta = msg.get("response_metadata") or {}
    if isinstance(meta, Mapping):
        reason = meta.get("finish_reason") or meta.get("stop_reason")
        if isinstance(reason, str):
            extra["finish_reason"] = reason
    step = builder.agent_step(
        _message_content(msg.get("content")),
        timestamp=ctx.timestamp,
        model_name=_model_name(msg) or ctx.model_name,
        reasoning_content=_reasoning(msg),
        tool_calls=calls,
        metrics=_metrics(msg) or ctx.metrics,
        extra=extra or None,
    )
    for c in step.get("tool_calls") or []:
        pending.by_name.setdefault(c["function_name"], []).append(c["tool_call_id"])
        pending.pending.append(c["tool_call_id"])


def _tool_result(builder: TrajectoryBuilder, msg: Mapping[str, Any], ctx: Timed, calls: _Calls) -> None:
    """Attach a tool or function message to the call it answers.

    A ToolMessage without ``tool_call_id`` (Harbor's LangGraph runner drops it) answers the oldest
    unanswered call: ToolNode returns results in call order. The result says so in
    ``extra.paired_by = "position"``.
    """
    call_id = msg.get("tool_call_id")
    by_position = False
    if msg["kind"] == "function" and not call_id:
        named = calls.by_name.get(str(msg.get("name")))
        call_id = named[0] if named else None
    elif not call_id and calls.pending:
        call_id = calls.pending[0]
        by_position = True
        calls.by_position += 1
    if call_id:
        calls.answered(str(call_id))
    content = msg.get("content")
    extra: dict[str, Any] = {}
    failed = msg.get("status") == "error" or ctx.tool_error is not None
    if failed:
        extra["status"] = "error"
        extra["error"] = ctx.tool_error or text_of(content)
    if msg.get("artifact") is not None:
        extra["artifact"] = msg["artifact"]
    if by_position:
        extra["paired_by"] = "position"
    extra.update(ctx.extra)
    if isinstance(content, list) and not any(
        isinstance(b, Mapping) and b.get("type") in ("image", "image_url") for b in content
    ):
        content = text_of(content)
    elif isinstance(content, list):
        content = _message_content(content)
    builder.observe(call_id, content, extra=extra or None)


def main_model(steps: list[dict[str, Any]]) -> str | None:
    models = Counter(s["model_name"] for s in steps if s.get("model_name"))
    return models.most_common(1)[0][0] if models else None
