"""OpenAI chat-completions message lists and OpenAI Responses items (also the Agents SDK's ``to_input_list()``).

**Chat completions** (``openai-chat``). Accepted shapes, each in a ``.json`` file or one per line
of a ``.jsonl`` file: a bare list of messages; ``{"messages": [...]}`` with optional ``model``,
``tools``, ``id``, ``metadata`` and ``usage``; a logged call ``{"messages": [...], "choices":
[...], "usage": ...}`` (or ``{"request": {...}, "response": {...}}``), whose first choice is
the final assistant message; a JSON array of such objects. Mapping:

* ``system`` / ``developer`` -> system step, ``user`` -> user step, ``assistant`` -> agent step
  (``reasoning_content`` or ``reasoning`` -> reasoning_content; ``refusal`` kept when there is
  no text);
* ``tool_calls`` -> ATIF tool calls, JSON-string ``arguments`` parsed into objects (unparseable
  ones kept as ``{"_raw": "..."}`` with a warning in the call's ``extra``);
* ``role: tool`` messages are not steps: their content becomes an observation result of the
  agent step whose tool call has that ``tool_call_id`` (legacy ``function`` messages: the
  latest unanswered call of that name);
* ``usage`` (``prompt_tokens`` already includes ``prompt_tokens_details.cached_tokens``) ->
  step metrics of the assistant message it belongs to, or ``final_metrics`` when it is the
  whole conversation's.

**Responses** (``openai-responses``): a list of input/output items, a Response object
(``{"object": "response", "output": [...]}``), or a logged call ``{"input": ..., "output": ...,
"instructions": ..., "usage": ...}``. ``message`` items map like chat roles;
``reasoning`` items (summary or content text) become the reasoning_content of the agent step
that follows; an assistant message and the ``function_call`` items after it form one agent
step (one model turn) until a tool output or user message intervenes; ``function_call_output``
(and other ``*_call_output`` items) are observations of the call they answer. Usage
(``input_tokens`` includes ``input_tokens_details.cached_tokens``) goes to the last agent step.

Agent name: the record's ``agent`` (a name, or ``{"name", "version"}``), else the model name, else the format name.
Task name and trial key: see :func:`atif.adapters.values.source_names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.chatlog import ChatLogAdapter, agent_info, record_metadata, source_ids, tool_definitions
from atif.adapters.values import message_list, obj, source_names, text_of

__all__ = ["OpenAIChatAdapter", "OpenAIResponsesAdapter", "ResponsesItems", "chat_metrics", "parts_text", "reasoning_text", "responses_metrics"]

CHAT_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_ANTHROPIC_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking", "server_tool_use"}
_RESPONSES_PARTS = {"input_text", "output_text", "input_image", "input_file", "summary_text", "reasoning_text"}
_RESPONSES_ITEMS = {
    "message", "reasoning", "function_call", "function_call_output", "custom_tool_call",
    "custom_tool_call_output", "computer_call", "computer_call_output", "web_search_call",
    "file_search_call", "code_interpreter_call", "image_generation_call", "local_shell_call",
    "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
    "apply_patch_call_output", "mcp_call", "mcp_list_tools", "mcp_approval_request",
    "mcp_approval_response", "item_reference", "compaction",
}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def chat_metrics(usage: Any) -> dict[str, Any] | None:
    """ATIF step metrics from a chat-completions ``usage`` object (prompt tokens include cached ones)."""
    if not isinstance(usage, dict):
        return None
    details = obj(usage.get("prompt_tokens_details"))
    m = {
        "prompt_tokens": _int(usage.get("prompt_tokens")),
        "completion_tokens": _int(usage.get("completion_tokens")),
        "cached_tokens": _int(details.get("cached_tokens")),
    }
    cost = usage.get("cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        m["cost_usd"] = float(cost)  # type: ignore[assignment]
    out = {k: v for k, v in m.items() if v is not None}
    return out or None


def responses_metrics(usage: Any) -> dict[str, Any] | None:
    """ATIF step metrics from a Responses ``usage`` object (input tokens include cached ones)."""
    if not isinstance(usage, dict):
        return None
    details = obj(usage.get("input_tokens_details"))
    out_details = obj(usage.get("output_tokens_details"))
    m: dict[str, Any] = {
        "prompt_tokens": _int(usage.get("input_tokens")),
        "completion_tokens": _int(usage.get("output_tokens")),
        "cached_tokens": _int(details.get("cached_tokens")),
    }
    if _int(out_details.get("reasoning_tokens")):
        m["extra"] = {"reasoning_tokens": out_details["reasoning_tokens"]}
    out = {k: v for k, v in m.items() if v is not None}
    return out or None


def parts_text(content: Any) -> str:
    """Text of chat/Responses content, with placeholders for media parts."""
    if not isinstance(content, list):
        return text_of(content)
    out: list[str] = []
    for p in content:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict):
            t = p.get("type")
            if t in ("image_url", "input_image"):
                url = p.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                out.append("[image]" if not isinstance(url, str) or url.startswith("data:") else f"[image: {url}]")
            elif t in ("input_audio", "audio"):
                out.append("[audio]")
            elif t in ("file", "input_file"):
                f = obj(p.get("file"))
                name = p.get("filename") or f.get("filename")
                out.append(f"[file: {name}]" if name else "[file]")
            else:
                text = p.get("text", p.get("refusal"))
                if isinstance(text, str):
                    out.append(text)
    return "\n".join(out)


def _chat_why_not(record: Any) -> str | None:
    msgs = message_list(record)
    if msgs is None:
        return "neither a message list nor an object with `messages`"
    if isinstance(record, dict) and "task_name" in record and "criterion_ratings" in record:
        return "a trial record (trials.jsonl), already converted"
    if not msgs:
        return "an empty message list"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return f"message {i} is not an object"
        role = m.get("role")
        if role not in CHAT_ROLES:
            return f"message {i} has no chat role (role={role!r})"
        if m.get("type") is not None and m.get("type") != "message":
            return f"message {i} has type {m.get('type')!r} (not a chat message)"
        content = m.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    if block.get("type") in _ANTHROPIC_BLOCKS:
                        return f"message {i} has an Anthropic {block.get('type')} block"
                    if block.get("type") in _RESPONSES_PARTS:
                        return f"message {i} has a Responses {block.get('type')} part"
    return None


class OpenAIChatAdapter(ChatLogAdapter):
    """OpenAI chat-completions message lists."""

    name = "openai-chat"
    description = "OpenAI chat-completions messages (list, {messages}, JSONL)"

    def _why_not(self, doc: Any) -> str | None:
        if isinstance(doc, list) and doc and all(isinstance(x, dict) and message_list(x) is not None
                                                 and not isinstance(x.get("role"), str) for x in doc):
            return next((r for r in map(_chat_why_not, doc) if r), None)
        return _chat_why_not(doc)

    def _conversations(self, doc: Any) -> list[Any] | None:
        if self._why_not(doc) is not None:
            return None
        if isinstance(doc, list) and doc and all(isinstance(x, dict) and "role" not in x for x in doc):
            return list(doc)
        return [doc]

    def _build(self, record: Any, path: Path, index: int | None) -> Converted:
        rec = obj(record)
        req = obj(rec.get("request")) or rec
        resp = obj(rec.get("response")) or rec
        messages = list(message_list(record) or [])
        usage_owner_index: int | None = None
        choices = resp.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            msg = choices[0].get("message")
            if isinstance(msg, dict):
                messages.append({**msg, "role": msg.get("role") or "assistant"})
                usage_owner_index = len(messages) - 1
        model = resp.get("model") or req.get("model")
        agent_name, agent_version = agent_info(rec, model if isinstance(model, str) and model else self.name)
        task, key = source_names(path, rec, index=index)
        if isinstance(resp.get("id"), str) and resp is not rec and not rec.get("id"):
            key = resp["id"]
        b = TrajectoryBuilder(
            agent_name=agent_name,
            agent_version=agent_version,
            model_name=model if isinstance(model, str) else None,
            tool_definitions=tool_definitions(req.get("tools")),
        )
        usage_metrics = chat_metrics(resp.get("usage"))
        pending_fn: dict[str, list[str]] = {}
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                b.skip("message is not an object", f"message {i}")
                continue
            b.count()
            role = m.get("role")
            ts = m.get("timestamp") or m.get("created_at")
            extra: dict[str, Any] = {}
            if isinstance(m.get("name"), str) and role != "function":
                extra["name"] = m["name"]
            if role in ("system", "developer"):
                if role == "developer":
                    extra["role"] = "developer"
                b.system(parts_text(m.get("content")), timestamp=ts, extra=extra)
            elif role == "user":
                b.user(parts_text(m.get("content")), timestamp=ts, extra=extra)
            elif role == "assistant":
                text = parts_text(m.get("content"))
                if not text and isinstance(m.get("refusal"), str):
                    text = m["refusal"]
                    extra["refusal"] = True
                calls = []
                for tc in m.get("tool_calls") or []:
                    if not isinstance(tc, dict):
                        continue
                    if tc.get("type") == "custom" and isinstance(tc.get("custom"), dict):
                        calls.append(b.tool_call(tc.get("id"), tc["custom"].get("name"),
                                                 {"input": tc["custom"].get("input")},
                                                 extra={"type": "custom"}))
                        continue
                    fn = obj(tc.get("function"))
                    calls.append(b.tool_call(tc.get("id"), fn.get("name"), fn.get("arguments")))
                fc = m.get("function_call")
                if isinstance(fc, dict):
                    call = b.tool_call(None, fc.get("name"), fc.get("arguments"), extra={"legacy_function_call": True})
                    calls.append(call)
                reasoning = m.get("reasoning_content") or m.get("reasoning")
                metrics = chat_metrics(m.get("usage"))
                if metrics is None and i == usage_owner_index:
                    metrics, usage_metrics = usage_metrics, None
                step = b.agent_step(
                    text,
                    timestamp=ts,
                    model_name=m.get("model") if isinstance(m.get("model"), str) and m.get("model") != model else None,
                    reasoning_content=reasoning if isinstance(reasoning, str) else None,
                    tool_calls=calls,
                    metrics=metrics,
                    extra=extra,
                )
                for c in step.get("tool_calls") or []:
                    if (c.get("extra") or {}).get("legacy_function_call"):
                        pending_fn.setdefault(c["function_name"], []).append(c["tool_call_id"])
            elif role == "tool":
                b.observe(m.get("tool_call_id"), parts_text(m.get("content")), extra=extra or None)
            elif role == "function":
                ids = pending_fn.get(str(m.get("name")), [])
                b.observe(ids.pop(0) if ids else None, parts_text(m.get("content")))
            else:
                b.warnings.append(f"message {i} has unknown role {role!r}; kept as a user step")
                b.user(parts_text(m.get("content")), timestamp=ts, extra={"role": role})
        final = None
        if usage_metrics and not any(s.get("metrics") for s in b.steps):
            final = {f"total_{k}": v for k, v in usage_metrics.items() if k != "extra"}
        traj = b.build(extra=record_metadata(rec), final_metrics=_final(final, b))
        trial = make_trial(traj, task_name=task, source_format=self.name, source_path=str(path),
                           source_ids=source_ids(rec, index), trial_id=key)
        return Converted(traj, trial, key, str(path) if index is None else f"{path}:{index}", b.warnings,
                         tally=b.tally())


def _final(final: dict[str, Any] | None, b: TrajectoryBuilder) -> dict[str, Any] | None:
    if final is None:
        return None
    return {**final, "total_steps": len(b.steps) or 1}


def _responses_items(record: Any) -> tuple[list[Any], Mapping[str, Any]] | None:
    """``(items, response-level fields)`` of a Responses record, or None."""
    if isinstance(record, list):
        return record, {}
    if not isinstance(record, dict):
        return None
    items: list[Any] = []
    inp = record.get("input")
    if isinstance(inp, str):
        items.append({"type": "message", "role": "user", "content": inp})
    elif isinstance(inp, list):
        items.extend(inp)
    out = record.get("output")
    if isinstance(out, list):
        items.extend(out)
    if "input" not in record and "output" not in record:
        return None
    return items, record


def _is_responses_item(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    t = item.get("type")
    if t in _RESPONSES_ITEMS and t != "message":
        return True
    content = item.get("content")
    if isinstance(content, list):
        return any(isinstance(p, dict) and p.get("type") in _RESPONSES_PARTS for p in content)
    return False


def _responses_why_not(record: Any) -> str | None:
    got = _responses_items(record)
    if got is None:
        return "neither an item list nor an object with input/output items"
    items, top = got
    if top.get("object") == "response" and isinstance(top.get("output"), list):
        return None
    if not items:
        return "no items"
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            return f"item {i} is not an object"
        t = it.get("type")
        if t is None and it.get("role") not in CHAT_ROLES:
            return f"item {i} has neither a type nor a role"
        if t is not None and t not in _RESPONSES_ITEMS:
            return f"item {i} has unknown type {t!r}"
        if it.get("tool_calls") is not None or it.get("role") == "tool":
            return f"item {i} is a chat-completions message"
    if not any(_is_responses_item(it) for it in items):
        return "no Responses-specific item (function_call, reasoning, output_text ...)"
    return None


def reasoning_text(item: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for key in ("content", "summary"):
        for p in item.get(key) or []:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        if parts:
            break
    return "\n".join(parts)


class OpenAIResponsesAdapter(ChatLogAdapter):
    """OpenAI Responses items, Response objects and Agents SDK ``to_input_list()`` output."""

    name = "openai-responses"
    description = "OpenAI Responses items (also Agents SDK to_input_list())"

    def _why_not(self, doc: Any) -> str | None:
        if isinstance(doc, list) and doc and all(isinstance(x, dict) and ("input" in x or "output" in x)
                                                 and "type" not in x and "role" not in x for x in doc):
            return next((r for r in map(_responses_why_not, doc) if r), None)
        return _responses_why_not(doc)

    def _conversations(self, doc: Any) -> list[Any] | None:
        if self._why_not(doc) is not None:
            return None
        if isinstance(doc, list) and doc and all(isinstance(x, dict) and ("input" in x or "output" in x)
                                                 and "type" not in x and "role" not in x for x in doc):
            return list(doc)
        return [doc]

    def _build(self, record: Any, path: Path, index: int | None) -> Converted:
        got = _responses_items(record)
        assert got is not None
        items, top = got
        rec: Mapping[str, Any] = record if isinstance(record, dict) else {}
        model = top.get("model")
        agent_name, agent_version = agent_info(rec, model if isinstance(model, str) and model else self.name)
        task, key = source_names(path, rec, index=index)
        b = TrajectoryBuilder(
            agent_name=agent_name,
            agent_version=agent_version,
            model_name=model if isinstance(model, str) else None,
            tool_definitions=tool_definitions(top.get("tools")),
        )
        if isinstance(top.get("instructions"), str) and top["instructions"]:
            b.system(top["instructions"])
        reader = ResponsesItems(b)
        for i, it in enumerate(items):
            reader.add(it, f"item {i}")
        reader.finish()
        metrics = responses_metrics(top.get("usage"))
        if metrics:
            last_agent = next((s for s in reversed(b.steps) if s["source"] == "agent"), None)
            if last_agent is not None:
                last_agent["metrics"] = metrics
        traj = b.build(extra=record_metadata(rec))
        trial = make_trial(traj, task_name=task, source_format=self.name, source_path=str(path),
                           source_ids=source_ids(rec, index), trial_id=key)
        return Converted(traj, trial, key, str(path) if index is None else f"{path}:{index}", b.warnings,
                         tally=b.tally())


class ResponsesItems:
    """Adds Responses items to a builder one by one (the item mapping described in this module's docstring).

    Reasoning waits for the agent step that follows it; an assistant message and the calls after it
    form one agent step until a tool output or another message intervenes. Call :meth:`finish`
    after the last item. Each item is counted in the builder's tally (or skipped with a reason).
    """

    def __init__(self, b: TrajectoryBuilder) -> None:
        self.b = b
        self.open_step: dict[str, Any] | None = None
        self.reasoning: list[str] = []
        self.reasoning_extra: dict[str, Any] = {}

    def agent_step(self, text: str = "", extra: dict[str, Any] | None = None, *, timestamp: Any = None) -> dict[str, Any]:
        """A new agent step carrying the pending reasoning."""
        ext = {**self.reasoning_extra, **(extra or {})}
        step = self.b.agent_step(text, reasoning_content="\n".join(self.reasoning) or None, extra=ext or None,
                                 timestamp=timestamp)
        self.reasoning, self.reasoning_extra = [], {}
        return step

    def add(self, it: Any, where: str, *, timestamp: Any = None) -> None:
        """Map one item (``where`` names it in warnings, e.g. ``item 3`` or ``line 12``)."""
        b = self.b
        if not isinstance(it, dict):
            b.skip("item is not an object", where)
            return
        t = it.get("type") or "message"
        if t == "item_reference":
            b.skip("an item_reference cannot be resolved", f"{where} ({it.get('id')!r})")
            return
        b.count()
        if t == "message":
            role = it.get("role")
            text = parts_text(it.get("content"))
            if role == "assistant":
                ext = {"message_id": it["id"]} if isinstance(it.get("id"), str) else {}
                step = self.open_step
                if step is not None and not step["message"] and not step.get("tool_calls"):
                    step["message"] = text
                    if ext:
                        step["extra"] = {**(step.get("extra") or {}), **ext}
                else:
                    self.open_step = self.agent_step(text, ext, timestamp=timestamp)
            else:
                self.open_step = None
                if role in ("system", "developer"):
                    b.system(text, extra={"role": "developer"} if role == "developer" else None, timestamp=timestamp)
                else:
                    b.user(text, extra=None if role in (None, "user") else {"role": role}, timestamp=timestamp)
        elif t == "reasoning":
            self.open_step = None
            text = reasoning_text(it)
            if text:
                self.reasoning.append(text)
            if it.get("encrypted_content"):
                self.reasoning_extra["encrypted_reasoning"] = True
        elif t.endswith("_output"):
            out = it.get("output")
            content = out if isinstance(out, str) else (parts_text(out) if isinstance(out, list) else out)
            if isinstance(content, dict):
                content = text_of(content) or str(dict(content))
            ext = {"type": t} if t != "function_call_output" else {}
            if isinstance(it.get("status"), str) and it["status"] not in ("completed",):
                ext["status"] = it["status"]
            b.observe(it.get("call_id"), content, extra=ext or None)
            self.open_step = None
        elif t.endswith("_call") or t in ("mcp_approval_request",):
            self._call(it, t, timestamp)
        else:
            b.warnings.append(f"{where}: {t} item kept as a system step")
            b.system(text_of(it.get("content")) or t, extra={"type": t}, timestamp=timestamp)
            self.open_step = None

    def _call(self, it: dict[str, Any], t: str, timestamp: Any) -> None:
        b = self.b
        if t in ("function_call", "custom_tool_call"):
            name = it.get("name")
            args = it.get("arguments") if t == "function_call" else {"input": it.get("input")}
        else:
            name = it.get("name") or t.removesuffix("_call")
            args = {k: v for k, v in it.items()
                    if k in ("action", "arguments", "input", "query", "queries", "code", "server_label")}
        ext = {"type": t} if t != "function_call" else {}
        if isinstance(it.get("id"), str) and it.get("call_id"):
            ext["item_id"] = it["id"]
        call = b.tool_call(it.get("call_id") or it.get("id"), name, args, extra=ext or None)
        if self.open_step is None:
            self.open_step = self.agent_step(timestamp=timestamp)
        b.add_tool_call(self.open_step, call)
        # Built-in tools carry their result on the call item itself.
        result = it.get("output") if t not in ("function_call", "custom_tool_call") else None
        if result is not None or t in ("web_search_call", "file_search_call") and it.get("results"):
            res = result if result is not None else it.get("results")
            b.observe(call["tool_call_id"], res if isinstance(res, str) else text_of(res) or str(res))

    def finish(self) -> None:
        """Flush reasoning that no agent step followed (it becomes an agent step of its own)."""
        if self.reasoning:
            self.agent_step()
