"""Anthropic Messages conversations.

Accepted shapes, in a ``.json`` file or one per line of a ``.jsonl`` file: a request-like object
``{"system": ..., "messages": [...], "model": ..., "tools": [...]}`` (optionally with the final
``response`` Message, or ``response``/``responses`` lists), a bare list of messages, or a JSON
array of such objects. Assistant entries may be full Message objects (``id``, ``model``,
``usage``, ``stop_reason``), as when a loop appends ``response.model_dump()``. Mapping:

* top-level ``system`` (a string or text blocks) -> a system step;
* user ``text`` (and ``image``/``document`` placeholders) -> a user step;
* user ``tool_result`` blocks are not user steps: each becomes an observation result of the
  agent step whose ``tool_use`` has that id (``is_error`` kept in ``extra``);
* assistant ``text`` -> message, ``thinking`` -> reasoning_content (``redacted_thinking``
  counted in ``extra``), ``tool_use`` / ``server_tool_use`` -> tool calls, and server tool
  result blocks (``web_search_tool_result`` ...) -> observations of their call on the same step;
* ``usage``: Anthropic ``input_tokens`` exclude the cache, so
  ``prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens``,
  ``cached_tokens = cache_read_input_tokens``, ``completion_tokens = output_tokens``.

Agent name: the record's ``agent``, else the model name, else ``anthropic``. Task name and trial key: see
:func:`atif.adapters.values.source_names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.chatlog import ChatLogAdapter, agent_info, record_metadata, source_ids, tool_definitions
from atif.adapters.values import message_list, obj, source_names, text_of

__all__ = ["AnthropicAdapter", "add_assistant_message", "add_user_message", "anthropic_metrics"]

_MARKER_BLOCKS = {
    "tool_use", "tool_result", "thinking", "redacted_thinking", "server_tool_use",
    "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
    "mcp_tool_use", "mcp_tool_result", "container_upload", "search_result",
}
_BLOCKS = _MARKER_BLOCKS | {"text", "image", "document"}


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def anthropic_metrics(usage: Any) -> dict[str, Any] | None:
    """ATIF step metrics from an Anthropic ``usage`` object (prompt tokens include both cache kinds)."""
    if not isinstance(usage, dict) or not any(
        k in usage for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")
    ):
        return None
    read = _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens"))
    m: dict[str, Any] = {
        "prompt_tokens": _int(usage.get("input_tokens")) + read + created,
        "completion_tokens": _int(usage.get("output_tokens")),
        "cached_tokens": read,
    }
    if created:
        m["extra"] = {"cache_creation_input_tokens": created}
    return m


def _why_not(record: Any) -> str | None:
    msgs = message_list(record)
    if msgs is None:
        return "neither a message list nor an object with `messages`"
    if not msgs:
        return "an empty message list"
    marked = False
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return f"message {i} is not an object"
        role = m.get("role")
        if role not in ("user", "assistant"):
            return f"message {i} has role {role!r} (Anthropic messages are user or assistant only)"
        if m.get("tool_calls") is not None or m.get("tool_call_id") is not None:
            return f"message {i} is an OpenAI chat message"
        content = m.get("content")
        if isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                t = block.get("type")
                if t not in _BLOCKS:
                    return f"message {i} has a {t!r} block (not an Anthropic content block)"
                if t in _MARKER_BLOCKS or (t in ("image", "document") and isinstance(block.get("source"), dict)):
                    marked = True
        if m.get("type") == "message" and "stop_reason" in m:
            marked = True
    req = record.get("request") if isinstance(record, dict) and isinstance(record.get("request"), dict) else record
    if isinstance(req, dict) and "system" in req:
        marked = True
    if not marked:
        return "no Anthropic marker (top-level system, tool_use/tool_result/thinking blocks, Message objects)"
    return None


def _text_blocks(content: Any) -> str:
    if not isinstance(content, list):
        return text_of(content)
    out: list[str] = []
    for b in content:
        if isinstance(b, str):
            out.append(b)
        elif isinstance(b, dict):
            t = b.get("type")
            if t == "text" and isinstance(b.get("text"), str):
                out.append(b["text"])
            elif t in ("image", "document"):
                src = obj(b.get("source"))
                url = src.get("url")
                label = "image" if t == "image" else "document"
                out.append(f"[{label}: {url}]" if isinstance(url, str) else f"[{label}]")
            elif t == "search_result":
                out.append(text_of(b.get("content")))
    return "\n".join(x for x in out if x)


class AnthropicAdapter(ChatLogAdapter):
    """Anthropic Messages API conversations."""

    name = "anthropic"
    description = "Anthropic Messages conversations (system + messages, JSONL)"

    @staticmethod
    def _batch(doc: Any) -> bool:
        return isinstance(doc, list) and bool(doc) and all(
            isinstance(x, dict) and "role" not in x and message_list(x) is not None for x in doc
        )

    def _why_not(self, doc: Any) -> str | None:
        if self._batch(doc):
            return next((r for r in map(_why_not, doc) if r), None)
        return _why_not(doc)

    def _conversations(self, doc: Any) -> list[Any] | None:
        if self._why_not(doc) is not None:
            return None
        return list(doc) if self._batch(doc) else [doc]

    def _build(self, record: Any, path: Path, index: int | None) -> Converted:
        rec = obj(record)
        req = obj(rec.get("request")) or rec
        messages = list(message_list(record) or [])
        responses: list[Any] = rec["responses"] if isinstance(rec.get("responses"), list) else []
        if isinstance(rec.get("response"), dict):
            responses = [*responses, rec["response"]]
        messages.extend(r for r in responses if isinstance(r, dict))
        model = req.get("model")
        if not isinstance(model, str):
            model = next((m.get("model") for m in messages if isinstance(m, dict)
                          and isinstance(m.get("model"), str)), None)
        agent_name, agent_version = agent_info(rec, model if isinstance(model, str) and model else self.name)
        task, key = source_names(path, rec, index=index)
        b = TrajectoryBuilder(
            agent_name=agent_name,
            agent_version=agent_version,
            model_name=model,
            tool_definitions=tool_definitions(req.get("tools")),
        )
        system = req.get("system")
        if system:
            b.system(_text_blocks(system))
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                b.skip("message is not an object", f"message {i}")
                continue
            b.count()
            role = m.get("role", "assistant" if m.get("type") == "message" else None)
            content = m.get("content")
            ts = m.get("timestamp") or m.get("created_at")
            if role == "assistant":
                add_assistant_message(b, m, model, ts)
            else:
                if role != "user":
                    b.warnings.append(f"message {i} has role {role!r}; kept as a user step")
                add_user_message(b, content, ts, extra={"role": role} if role != "user" else None)
        traj = b.build(extra=record_metadata(rec))
        trial = make_trial(traj, task_name=task, source_format=self.name, source_path=str(path),
                           source_ids=source_ids(rec, index), trial_id=key)
        return Converted(traj, trial, key, str(path) if index is None else f"{path}:{index}", b.warnings,
                         tally=b.tally())


def add_user_message(b: TrajectoryBuilder, content: Any, ts: Any, extra: dict[str, Any] | None = None) -> None:
    """Add a user message: its ``tool_result`` blocks become observations of their calls, the rest one user step."""
    blocks = content if isinstance(content, list) else None
    texts: list[Any] = []
    for block in blocks if blocks is not None else [content]:
        if isinstance(block, dict) and block.get("type") in ("tool_result", "mcp_tool_result"):
            ext: dict[str, Any] = {}
            if block.get("is_error"):
                ext["is_error"] = True
            b.observe(block.get("tool_use_id"), _text_blocks(block.get("content")), extra=ext or None)
        else:
            texts.append(block)
    if blocks is None or texts:
        b.user(_text_blocks(texts), timestamp=ts, extra=extra)


def add_assistant_message(
    b: TrajectoryBuilder, m: Mapping[str, Any], model: str | None, ts: Any, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Add an assistant Message (text, thinking, tool_use and server tool blocks, usage) as one agent step."""
    content = m.get("content")
    blocks = content if isinstance(content, list) else None
    texts: list[str] = []
    thinking: list[str] = []
    redacted = 0
    calls: list[dict[str, Any]] = []
    server_results: list[tuple[Any, Any, dict[str, Any]]] = []
    for block in blocks if blocks is not None else []:
        if not isinstance(block, dict):
            continue
        t = block.get("type")
        if t == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif t == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif t == "redacted_thinking":
            redacted += 1
        elif t in ("tool_use", "server_tool_use", "mcp_tool_use"):
            ext = {"type": t} if t != "tool_use" else None
            if t == "mcp_tool_use" and block.get("server_name"):
                ext = {"type": t, "server_name": block["server_name"]}
            calls.append(b.tool_call(block.get("id"), block.get("name"), block.get("input"), extra=ext))
        elif isinstance(t, str) and t.endswith("_tool_result"):
            server_results.append((block.get("tool_use_id"), block.get("content"), {"type": t}))
    if blocks is None:
        texts.append(text_of(content))
    step_extra = dict(extra or {})
    if redacted:
        step_extra["redacted_thinking_blocks"] = redacted
    for k in ("id", "stop_reason"):
        if isinstance(m.get(k), str):
            step_extra["message_id" if k == "id" else k] = m[k]
    step_model = m.get("model") if isinstance(m.get("model"), str) and m.get("model") != model else None
    step = b.agent_step(
        "\n".join(t for t in texts if t),
        timestamp=ts,
        model_name=step_model,
        reasoning_content="\n".join(thinking) or None,
        tool_calls=calls,
        metrics=anthropic_metrics(m.get("usage")),
        extra=step_extra,
    )
    for call_id, result, ext in server_results:
        content_text = _text_blocks(result) if isinstance(result, list) else (
            text_of(result) if not isinstance(result, dict) else str(result.get("error_code") or result)
        )
        if isinstance(result, list):
            titles = [r.get("title") or r.get("url") for r in result if isinstance(r, dict)
                      and r.get("type") == "web_search_result"]
            if titles and not content_text:
                content_text = "\n".join(str(x) for x in titles if x)
        b.observe(call_id, content_text, extra=ext)
    return step
