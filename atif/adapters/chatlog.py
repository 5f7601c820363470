"""What the conversation-log adapters share (OpenAI chat, OpenAI Responses, Anthropic Messages).

Each of those formats is a message list in a ``.json`` file (one conversation, or an array of
them) or one conversation per line of a ``.jsonl`` file. An array of request bodies whose
message lists each start with the previous one's is one run logged call by call: it converts to
one trial, the last request (with its response), and the earlier ones are counted as skipped. :class:`ChatLogAdapter` does the
reading, sniffing and per-record error handling; a subclass says what a conversation of its
format looks like (``_why_not``, ``_conversations``) and builds one (``_build``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.jsonio import iter_records, sniff_json_or_jsonl
from atif.adapters.values import message_list
from atif.errors import AdapterError, AtifError

__all__ = ["ChatLogAdapter", "agent_info", "record_metadata", "source_ids", "tool_definitions"]


class ChatLogAdapter:
    """Base of the conversation-log adapters: sniffing, reading records, one trial per conversation."""

    name = ""
    description = ""

    def _conversations(self, doc: Any) -> list[Any] | None:
        raise NotImplementedError

    def _why_not(self, doc: Any) -> str | None:
        raise NotImplementedError

    def _build(self, record: Any, path: Path, index: int | None) -> Converted:
        raise NotImplementedError

    def build_conversation(self, record: Any, path: Path) -> Converted:
        """One conversation of this format given as a value (e.g. found by a mapping inside a custom
        envelope); :class:`AdapterError` says why it is not one."""
        why = self._why_not(record)
        convs = self._conversations(record) if why is None else None
        if not convs:
            raise AdapterError(f"not {self.description}: {why or 'no conversation'}")
        if len(convs) > 1:
            raise AdapterError(f"{len(convs)} conversations where one was expected")
        return self._build(convs[0], path, None)

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.json``/``.jsonl`` file whose (first) record has this format's markers."""
        if path.is_dir():
            return Sniff(False, "a directory")
        doc, why = sniff_json_or_jsonl(path)
        if why:
            return Sniff(False, why)
        reason = self._why_not(doc)
        return Sniff(reason is None, reason or f"looks like {self.name} input")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per conversation (per line of a JSONL file, per element of a JSON array of conversations)."""
        try:
            for lineno, doc in iter_records(path):
                convs = self._conversations(doc)
                where = f"{path}:{lineno}" if lineno is not None else str(path)
                if convs is None:
                    yield Failure(where, f"not {self.description}: {self._why_not(doc)}")
                    continue
                prefixes = len(convs) - 1 if lineno is None and _one_run(convs) else 0
                if prefixes:
                    convs = [_last_with_usage(convs)]
                for i, conv in enumerate(convs):
                    index = lineno if lineno is not None else (i + 1 if len(convs) > 1 else None)
                    try:
                        item = self._build(conv, path, index)
                    except AtifError as exc:
                        yield Failure(where, str(exc))
                        continue
                    if prefixes:
                        _count_prefixes(item, prefixes)
                    yield item
        except AtifError as exc:
            yield Failure(str(path), str(exc))


_PREFIX_REASON = "an earlier request of the same run (the last request repeats its messages)"


def _one_run(convs: list[Any]) -> bool:
    """True when a list of request bodies is one run logged call by call: each request's messages
    are the start of the next one's. Then the last request (with its response) is the conversation."""
    lists = [message_list(c) for c in convs]
    if len(lists) < 2 or any(m is None for m in lists):
        return False
    return all(a is not None and b is not None and len(a) < len(b) and b[: len(a)] == a
               for a, b in itertools.pairwise(lists))


def _last_with_usage(convs: list[Any]) -> Any:
    """The last request, its earlier calls' outputs carrying the ``usage`` of the request that made them."""
    last = dict(convs[-1])
    holder = dict(last["request"]) if isinstance(last.get("request"), dict) and "messages" not in last else last
    messages = list(holder["messages"])
    for conv in convs[:-1]:
        n = len(message_list(conv) or [])
        response = conv.get("response") if isinstance(conv.get("response"), dict) else conv
        usage = response.get("usage")
        if isinstance(usage, dict) and n < len(messages) and isinstance(messages[n], dict) \
                and messages[n].get("role") == "assistant" and "usage" not in messages[n]:
            messages[n] = {**messages[n], "usage": usage}
    holder["messages"] = messages
    if holder is not last:
        last["request"] = holder
    return last


def _count_prefixes(item: Converted, n: int) -> None:
    tally = dict(item.tally or {"read": 0, "mapped": 0, "skipped": 0, "skip_reasons": {}})
    tally["read"] = int(tally.get("read") or 0) + n
    tally["skipped"] = int(tally.get("skipped") or 0) + n
    tally["skip_reasons"] = {**(tally.get("skip_reasons") or {}), _PREFIX_REASON: n}
    item.tally = tally
    item.warnings.append(f"{n} earlier request(s) of the same run read as prefixes of the last one; one trial")


def agent_info(record: Any, default: str) -> tuple[str, str]:
    """``(name, version)`` from the record's ``agent`` (a name or ``{"name", "version"}``), else ``default``.

    Callers pass the model name as the default (the format name only when there is no model): a
    chat log says nothing of the framework that wrote it, so the same agent logged as OpenAI chat,
    Responses items or Anthropic messages lands in one cohort; the format is in the trial's metadata.
    """
    agent = record.get("agent") if isinstance(record, dict) else None
    if isinstance(agent, str) and agent:
        return agent, "unknown"
    if isinstance(agent, dict) and isinstance(agent.get("name"), str):
        return agent["name"], str(agent.get("version") or "unknown")
    return default, "unknown"


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    """A copy of a request's ``tools`` list when it is a non-empty list of objects, else None."""
    if isinstance(tools, list) and tools and all(isinstance(t, dict) for t in tools):
        return [dict(t) for t in tools]
    return None


def record_metadata(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record's ``metadata`` object as trajectory ``extra`` (``{"metadata": {...}}``), or None."""
    meta = record.get("metadata")
    return {"metadata": dict(meta)} if isinstance(meta, dict) and meta else None


def source_ids(rec: Mapping[str, Any], index: int | None) -> dict[str, Any]:
    """The ids a record carries (and its record number in a multi-record file), for ``Trial.metadata``."""
    ids: dict[str, Any] = {}
    for k in ("id", "trial_id", "session_id", "conversation_id"):
        if isinstance(rec.get(k), (str, int)) and not isinstance(rec.get(k), bool):
            ids[k] = rec[k]
    resp = rec.get("response")
    if isinstance(resp, dict) and isinstance(resp.get("id"), str):
        ids["response_id"] = resp["id"]
    if index is not None:
        ids["record"] = index
    return ids
