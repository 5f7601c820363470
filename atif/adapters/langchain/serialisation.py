"""LangChain message serialisations (``messages_to_dict``, ``model_dump``, ``dumpd``) and LangGraph
states and ``stream_mode="updates"`` chunks, read into one flat message list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


def _stream_chunks(doc: list[Any]) -> tuple[str, list[list[Any]]] | None:
    """Message writes of a ``stream_mode="updates"`` chunk list, or None when it is not one."""
    version = None
    writes: list[list[Any]] = []
    for chunk in doc:
        ns: Any = None
        if isinstance(chunk, Mapping) and chunk.get("type") == "updates" and "data" in chunk:
            version = version or "v2"
            ns, data = chunk.get("ns"), chunk.get("data")
        elif isinstance(chunk, list) and len(chunk) == 2 and isinstance(chunk[0], list) and isinstance(
            chunk[1], Mapping
        ):
            version = version or "v1"
            ns, data = chunk
        elif isinstance(chunk, Mapping) and chunk and "messages" not in chunk and not is_run(chunk):
            version = version or "v1"
            data = chunk
        else:
            return None
        if not isinstance(data, Mapping):
            return None
        if ns:  # a subgraph's own writes reach the parent through its node's update
            continue
        for node, update in data.items():
            if str(node).startswith("__"):  # __interrupt__ and other control channels
                continue
            if update is not None and not isinstance(update, (Mapping, list)):
                return None
            got = _update_messages(update)
            if got:
                writes.append(got)
    if version is None or not writes:
        return None
    return version, writes


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
        msgs, why = _message_list(doc)
        if msgs is not None:
            fmt = serialisation_of(doc[0]) or "messages"
            return _Parsed(fmt, msgs), ""
        stream = _stream_chunks(doc)
        if stream is not None:
            version, writes = stream
            state: list[dict[str, Any]] = []
            for w in writes:
                got, wwhy = _message_list(w)
                if got is None:
                    return None, f"a stream update holds a non-message ({wwhy})"
                _add_messages(state, got)
            return _Parsed(f"langgraph-updates-{version}", state), ""
        return None, f"a list that is neither LangChain messages nor LangGraph updates ({why})"
    return None, f"a JSON {type(doc).__name__}"


def read_document(path: Path) -> Any:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return [value for _, value in iter_jsonl(path)]
    return load_json_cached(path)
