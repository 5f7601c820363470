"""LangChain message serialisations (``messages_to_dict``, ``model_dump``, ``dumpd``) and LangGraph
states and ``stream_mode="updates"`` chunks, read into one flat message list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atif.adapters.jsonio import iter_jsonl, load_json_cached

JSONL_SUFFIXES = (".jsonl", ".ndjson")

# Message ``type`` values (model_dump / messages_to_dict) and class names (dumpd) -> kind.
_KINDS = {
    "human": "human",
    "ai": "ai",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "chat": "chat",
    "remove": "remove",
}

_CLASS_KINDS = {
    "HumanMessage": "human",
    "AIMessage": "ai",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "function",
    "ChatMessage": "chat",
    "RemoveMessage": "remove",
}

for _cls, _kind in list(_CLASS_KINDS.items()):
    _CLASS_KINDS[_cls + "Chunk"] = _kind
    _KINDS[_cls + "Chunk"] = _kind

_ROLE_KINDS = {"user": "human", "human": "human", "assistant": "ai", "ai": "ai", "system": "system",
               "developer": "system", "tool": "tool", "function": "function"}


def serialisation_of(item: Any) -> str | None:
    """Which LangChain serialisation one message is in (None when it is not a message)."""
    if not isinstance(item, Mapping):
        return None
    if item.get("lc") == 1 and item.get("type") == "constructor":
        ident = item.get("id")
        if isinstance(ident, list) and ident and str(ident[-1]) in _CLASS_KINDS and isinstance(
            item.get("kwargs"), Mapping
        ):
            return "dumpd"
        return None
    data = item.get("data")
    if set(item) == {"type", "data"} and isinstance(data, Mapping) and item.get("type") in _KINDS:
        return "messages_to_dict" if "content" in data or item.get("type") == "remove" else None
    if item.get("type") in _KINDS and "content" in item and "role" not in item:
        return "model_dump"
    return None


def normalize_message(item: Any) -> dict[str, Any] | None:
    """One LangChain message, in any serialisation, as a flat dict with a ``kind``.

    ``kind`` is one of human, ai, system, tool, function, chat, remove; the other keys are the
    message's own fields (content, tool_calls, usage_metadata, ...). None when ``item`` is not
    a LangChain message.
    """
    fmt = serialisation_of(item)
    if fmt is None:
        return None
    if fmt == "dumpd":
        data = dict(item["kwargs"])
        kind = _CLASS_KINDS[str(item["id"][-1])]
    elif fmt == "messages_to_dict":
        data = dict(item["data"])
        kind = _KINDS[str(item["type"])]
    else:
        data = dict(item)
        kind = _KINDS[str(item["type"])]
    if kind == "chat":
        kind = _ROLE_KINDS.get(str(data.get("role") or "").lower(), "chat")
    data["kind"] = kind
    return data


def _message_list(items: Any) -> tuple[list[dict[str, Any]] | None, str]:
    """All items as normalised messages, or ``(None, why not)``."""
    if not isinstance(items, list):
        return None, "not a list"
    if not items:
        return None, "an empty list"
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        msg = normalize_message(item)
        if msg is None:
            return None, f"item {i} is not a LangChain message ({describe(item)})"
        out.append(msg)
    return out, ""


def describe(item: Any) -> str:
    if isinstance(item, Mapping):
        keys = sorted(str(k) for k in item)[:6]
        if "role" in item:
            return "has `role`: an OpenAI/Anthropic-style message, not a LangChain one"
        if "run_type" in item:
            return "a LangSmith run"
        return "keys " + ", ".join(keys)
    return type(item).__name__


def is_run(item: Any) -> bool:
    return isinstance(item, Mapping) and "run_type" in item and ("id" in item or "name" in item) and (
        "inputs" in item or "outputs" in item or "child_runs" in item or "dotted_order" in item
    )


@dataclass(slots=True)
class _Parsed:
    """A LangChain input read into a message list."""

    shape: str
    messages: list[dict[str, Any]]
    also_read: int = 0
    """Source records beyond the messages that are represented by them (streamed chunks)."""
    skips: dict[str, int] = field(default_factory=dict)
    """Reason -> source records passed over."""


def _update_messages(update: Any) -> list[Any] | None:
    """The ``messages`` written by one node update (None when it writes none)."""
    if isinstance(update, Mapping):
        msgs = update.get("messages")
        if msgs is None:
            return None
        return list(msgs) if isinstance(msgs, list) else [msgs]
    if isinstance(update, list):  # a node returning several updates (Command lists)
        out: list[Any] = []
        for u in update:
            got = _update_messages(u)
            if got:
                out.extend(got)
        return out or None
    return None


_STREAM_MODES = {"values", "updates", "messages", "custom", "checkpoints", "tasks", "debug", "tools"}


@dataclass(slots=True)
class _Stream:
    """What a LangGraph stream holds: message writes of ``updates`` parts, ``messages`` parts
    (``[message chunk, metadata]``), the last ``values`` state, and other parts by mode."""

    version: str = ""
    writes: list[list[Any]] = field(default_factory=list)
    message_parts: list[Any] = field(default_factory=list)
    last_values: list[Any] | None = None
    other: dict[str, int] = field(default_factory=dict)
    modes: set[str] = field(default_factory=set)
    subgraph: int = 0
    """Parts of a subgraph, whose messages reach the parent through its node's update."""


def _stream_part(chunk: Any) -> tuple[str, str, Any, Any] | None:
    """``(version, mode, namespace, data)`` of one stream chunk, or None when it is not one.

    v2 parts are ``{"type": mode, "ns": [...], "data": ...}``; v1 chunks are ``{node: update}``,
    ``[namespace, {node: update}]`` (subgraphs), ``[mode, data]`` (several modes) or
    ``[namespace, mode, data]``.
    """
    if isinstance(chunk, Mapping):
        if chunk.get("type") in _STREAM_MODES and "data" in chunk and set(chunk) <= {"type", "ns", "data", "interrupts"}:
            return "v2", str(chunk["type"]), chunk.get("ns"), chunk["data"]
        if chunk and "messages" not in chunk and not is_run(chunk):
            return "v1", "updates", None, chunk
        return None
    if isinstance(chunk, list):
        if len(chunk) == 2 and isinstance(chunk[0], list) and isinstance(chunk[1], Mapping):
            return "v1", "updates", chunk[0], chunk[1]
        if len(chunk) == 2 and chunk[0] in _STREAM_MODES:
            return "v1", str(chunk[0]), None, chunk[1]
        if len(chunk) == 3 and isinstance(chunk[0], list) and chunk[1] in _STREAM_MODES:
            return "v1", str(chunk[1]), chunk[0], chunk[2]
    return None


def _stream_chunks(doc: list[Any]) -> _Stream | None:
    """Read a list of ``graph.stream(...)`` chunks, or None when it is not one."""
    stream = _Stream()
    for chunk in doc:
        part = _stream_part(chunk)
        if part is None:
            return None
        version, mode, ns, data = part
        stream.version = stream.version or version
        stream.modes.add(mode)
        if ns:  # a subgraph's own writes reach the parent through its node's update
            stream.subgraph += 1
            continue
        if mode == "messages":
            if not isinstance(data, list) or len(data) != 2:
                return None
            stream.message_parts.append(data[0])
            continue
        if mode == "values":
            if isinstance(data, Mapping) and isinstance(data.get("messages"), list):
                stream.last_values = data["messages"]
            stream.other[mode] = stream.other.get(mode, 0) + 1
            continue
        if mode != "updates":
            stream.other[mode] = stream.other.get(mode, 0) + 1
            continue
        if not isinstance(data, Mapping):
            return None
        for node, update in data.items():
            if str(node).startswith("__"):  # __interrupt__ and other control channels
                continue
            if update is not None and not isinstance(update, (Mapping, list)):
                return None
            got = _update_messages(update)
            if got:
                stream.writes.append(got)
    if not stream.version or not (stream.writes or stream.message_parts or stream.last_values):
        return None
    return stream


def _merge_chunks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages of a ``stream_mode="messages"`` stream: chunks of one message (same id) joined
    as ``AIMessageChunk.__add__`` does (text concatenated, tool-call chunks joined by index,
    usage summed); a whole message (a tool result, a model that does not stream) is kept."""
    out: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for msg in parts:
        mid = msg.get("id")
        prev = by_id.get(str(mid)) if mid else None
        if prev is None:
            msg = dict(msg)
            if mid:
                by_id[str(mid)] = msg
            out.append(msg)
            continue
        if isinstance(prev.get("content"), str) and isinstance(msg.get("content"), str):
            prev["content"] = prev["content"] + msg["content"]
        elif msg.get("content"):
            prev["content"] = _as_blocks(prev.get("content")) + _as_blocks(msg.get("content"))
        chunks = prev.setdefault("tool_call_chunks", [])
        for tc in msg.get("tool_call_chunks") or []:
            same = next((c for c in chunks if c.get("index") == tc.get("index") and tc.get("index") is not None), None)
            if same is None:
                chunks.append(dict(tc))
            else:
                for key in ("name", "args"):
                    if tc.get(key):
                        same[key] = (same.get(key) or "") + tc[key]
                same["id"] = same.get("id") or tc.get("id")
        if msg.get("usage_metadata"):
            prev["usage_metadata"] = _sum_usage(prev.get("usage_metadata"), msg["usage_metadata"])
        for key in ("response_metadata", "additional_kwargs"):
            if isinstance(msg.get(key), Mapping):
                prev[key] = {**(prev.get(key) or {}), **msg[key]}
    for msg in out:  # the joined tool-call chunks are the calls
        if msg.get("tool_call_chunks") and not msg.get("tool_calls"):
            msg["tool_calls"] = [{"id": c.get("id"), "name": c.get("name"), "args": c.get("args") or "{}"}
                                 for c in msg["tool_call_chunks"]]
    return out


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, list):
        return list(content)
    return [{"type": "text", "text": content}] if content else []


def _sum_usage(a: Any, b: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(a) if isinstance(a, Mapping) else {}
    for k, v in b.items():
        if isinstance(v, int) and not isinstance(v, bool):
            out[k] = (out.get(k) or 0) + v
        elif isinstance(v, Mapping):
            out[k] = _sum_usage(out.get(k), v)
    return out


def _add_messages(current: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """LangGraph's ``add_messages`` reducer: same id replaces, RemoveMessage deletes, else append."""
    for msg in new:
        mid = msg.get("id")
        if msg["kind"] == "remove":
            if mid == "__remove_all__":
                current.clear()
            else:
                current[:] = [m for m in current if m.get("id") != mid]
            continue
        if mid is not None:
            for i, m in enumerate(current):
                if m.get("id") == mid:
                    current[i] = msg
                    break
            else:
                current.append(msg)
        else:
            current.append(msg)


def parse_langchain(doc: Any) -> tuple[_Parsed | None, str]:
    """Read a parsed JSON value as LangChain messages; ``(None, why not)`` when it is none of the shapes."""
    if isinstance(doc, Mapping):
        if is_run(doc):
            return None, "a LangSmith run (the langsmith adapter reads it)"
        if "messages" in doc:
            msgs, why = _message_list(doc["messages"])
            if msgs is None:
                return None, f"`messages` is not a LangChain message list: {why}"
            return _Parsed("langgraph-state", msgs), ""
        if serialisation_of(doc):
            return _Parsed(serialisation_of(doc) or "", [normalize_message(doc)]), ""  # type: ignore[list-item]
        return None, "an object without `messages`"
    if isinstance(doc, list):
        if doc and all(is_run(r) for r in doc[:3]):
            return None, "a list of LangSmith runs (the langsmith adapter reads it)"
        if doc and isinstance(doc[0], Mapping) and str(doc[0].get("event", "")).startswith("on_"):
            return None, "astream_events events (the langsmith adapter reads them)"
        msgs, why = _message_list(doc)
        if msgs is not None:
            fmt = serialisation_of(doc[0]) or "messages"
            return _Parsed(fmt, msgs), ""
        stream = _stream_chunks(doc)
        if stream is not None:
            return _from_stream(stream)
        return None, f"a list that is neither LangChain messages nor LangGraph updates ({why})"
    return None, f"a JSON {type(doc).__name__}"


def _from_stream(stream: _Stream) -> tuple[_Parsed | None, str]:
    """The conversation of a stream: ``updates`` replayed with ``add_messages``; else the last
    ``values`` state; else the ``messages`` chunks joined. Parts of other modes are skipped."""
    state: list[dict[str, Any]] = []
    parsed = _Parsed("", state)
    modes = "+".join(sorted(m for m in stream.modes if m in ("updates", "messages", "values")))
    parsed.shape = f"langgraph-{modes}-{stream.version}" if stream.modes != {"updates"} else (
        f"langgraph-updates-{stream.version}")
    if stream.writes:
        for w in stream.writes:
            got, why = _message_list(w)
            if got is None:
                return None, f"a stream update holds a non-message ({why})"
            _add_messages(state, got)
        # The same messages, token by token: kept through the updates that carry them whole.
        parsed.also_read = len(stream.message_parts) + stream.other.pop("values", 0)
    elif stream.last_values is not None:
        got, why = _message_list(stream.last_values)
        if got is None:
            return None, f"a stream state holds a non-message ({why})"
        state.extend(got)
        parsed.also_read = len(stream.message_parts) + stream.other.pop("values", 1) - 1
    else:
        got, why = _message_list(stream.message_parts)
        if got is None:
            return None, f"a streamed message part is not a message ({why})"
        state.extend(_merge_chunks(got))
        parsed.also_read = len(got) - len(state)
    parsed.also_read += stream.subgraph
    for mode, n in stream.other.items():
        parsed.skips[f"stream part of mode {mode!r}"] = n
    return parsed, ""


def read_document(path: Path) -> Any:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return [value for _, value in iter_jsonl(path)]
    return load_json_cached(path)
