"""The fidelity property, written once for every adapter: what the source says, the output says.

:func:`needles` walks a raw runner output (any JSON: a file, the lines of a JSONL file, the
members of a zip, every JSON file of a folder) and collects what a faithful conversion must keep:
every text under a conversational key (message content, reasoning, tool arguments, tool results),
every tool-call name, and every token count. :func:`missing` looks each one up in the converted
output (trajectories, trials and tasks, as parsed JSON) and returns what it cannot find.

Matching is deliberately loose where adapters legitimately reshape: whitespace is collapsed,
JSON strings (tool arguments) are compared by their leaves, and a text may be found inside a
longer output text (adapters join text blocks). It is strict where loss hides: a text or
number that appears nowhere in the output is reported.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# Keys whose string values are conversation: what the user, the agent or a tool said.
TEXT_KEYS = {
    "content", "text", "thinking", "reasoning", "reasoning_content", "refusal", "output", "result",
    "instructions", "prompt", "prompts", "completion", "thought", "observation", "summary_text",
    "message", "response", "system", "question", "answer", "explanation", "stdout", "stderr",
}
# Keys whose whole value (every leaf) is a tool call's arguments.
ARGUMENT_KEYS = {"arguments", "args", "input", "tool_input", "parameters"}
# Keys that name a tool when they sit beside arguments.
NAME_KEYS = ("name", "function_name", "tool_name", "tool")
_TOKENS = re.compile(r"(^|_)tokens?($|_)|token_count|^n_(input|output|cache)")
# Sums a converter recomputes from the parts it keeps (input + output, run totals).
_DERIVED = re.compile(r"^total_|^total$|(^|_)total_tokens$|^(turn|thread)_token_usage$|^per_turn_token$|^accumulated_")
# Numbers under a token-ish key that are not counts of tokens: latencies and configured limits.
_NOT_COUNTS = re.compile(r"_ms$|limit")
# Content digests (e.g. Codex's world_state instruction hashes) are identifiers, not conversation.
_DIGEST = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_WS = re.compile(r"\s+")
# langchain-core's ``get_buffer_string``: one prompt string of ``Role: text`` lines (``prompts`` of
# an ``llm`` run). Each message in it is a needle; an AI line ends with its tool calls' repr.
_BUFFER_LINE = re.compile(r"^(System|Human|AI|Tool|Function): ", re.MULTILINE)
_TOOL_CALLS_REPR = re.compile(r"\[\{'name': .*\}\]$", re.DOTALL)


@dataclass(frozen=True)
class Needle:
    """One thing the output must contain, and where in the source it was found."""

    kind: str  # "text" | "tool name" | "argument" | "tokens"
    value: str | int
    where: str

    def __str__(self) -> str:
        shown = repr(self.value) if not isinstance(self.value, str) or len(self.value) < 80 else repr(self.value[:77] + "...")
        return f"{self.kind} {shown} at {self.where}"


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _json_of(text: str) -> Any:
    t = text.strip()
    if t[:1] in "{[":
        try:
            return orjson.loads(t)
        except orjson.JSONDecodeError:
            return None
    return None


def _leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{where}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{where}/{i}")
    else:
        yield where, value


def _buffer_needles(text: str, where: str, out: list[Needle]) -> None:
    starts = [m.start() for m in _BUFFER_LINE.finditer(text)]
    if not starts or starts[0] != 0:
        if _norm(text):
            out.append(Needle("text", _norm(text), where))
        return
    for n, (a, b) in enumerate(zip(starts, [*starts[1:], len(text)], strict=True)):
        body = text[a:b].split(": ", 1)[1]
        body = _TOOL_CALLS_REPR.sub("", body.rstrip("\n"))
        if _norm(body):
            out.append(Needle("text", _norm(body), f"{where}#{n}"))


def _walk(value: Any, where: str, out: list[Needle], totals: bool = False) -> None:
    """Collect needles; inside a running total (``total_token_usage``) token counts are sums, not counts."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str) and where.rsplit("/", 1)[-1] == "prompts":
                _buffer_needles(v, f"{where}/{i}", out)
            else:
                _walk(v, f"{where}/{i}", out, totals)
        return
    if not isinstance(value, dict):
        return
    args_key = next((k for k in ARGUMENT_KEYS if k in value), None)
    if args_key is not None and not isinstance(value[args_key], str) or (
        args_key is not None and isinstance(_json_of(value[args_key]), dict)
    ):
        name_key = next((k for k in NAME_KEYS if isinstance(value.get(k), str)), None)
        if name_key is not None:
            out.append(Needle("tool name", value[name_key], f"{where}/{name_key}"))
    for k, v in value.items():
        path = f"{where}/{k}"
        if k in ARGUMENT_KEYS and (isinstance(v, dict) and "messages" in v or isinstance(v, list) and v and all(
                isinstance(m, dict) and "role" in m for m in v)):
            # A graph's input state (astream_events) or a model call's input messages (an Agents SDK
            # generation span): conversation, not tool arguments.
            _walk(v, path, out)
            continue
        if k in ARGUMENT_KEYS:
            parsed = _json_of(v) if isinstance(v, str) else v
            if isinstance(v, str) and parsed is None:
                if _norm(v):
                    out.append(Needle("argument", _norm(v), path))
                continue
            for leaf_path, leaf in _leaves(parsed, path):
                if isinstance(leaf, str) and _norm(leaf):
                    out.append(Needle("argument", _norm(leaf), leaf_path))
            continue
        if isinstance(v, str):
            if k in TEXT_KEYS and _norm(v) and not _DIGEST.match(v):
                parsed = _json_of(v)
                if isinstance(parsed, (dict, list)):
                    _walk(parsed, path, out)
                else:
                    out.append(Needle("text", _norm(v), path))
        elif isinstance(v, int) and not isinstance(v, bool):
            if _TOKENS.search(k) and not _DERIVED.search(k.rsplit(".", 1)[-1]) and not _NOT_COUNTS.search(k) \
                    and v > 0 and not totals:
                out.append(Needle("tokens", v, path))
        else:
            _walk(v, path, out, totals or bool(_DERIVED.search(k)))


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in (".json", ".jsonl", ".ndjson", ".eval"):
                yield from _documents(p)
        return
    data = path.read_bytes()
    if path.suffix.lower() == ".eval" or data[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                if name.endswith(".json"):
                    yield f"{path.name}!{name}", orjson.loads(zf.read(name))
        return
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    yield f"{path.name}:{n}", orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # bad lines are reported by the converter, not kept
        return
    yield path.name, orjson.loads(data)


def needles(source: Path) -> list[Needle]:
    """Everything a faithful conversion of ``source`` must keep."""
    out: list[Needle] = []
    for where, doc in _documents(source):
        _walk(doc, where, out)
    return out


class Haystack:
    """The converted output, searchable for texts and numbers."""

    def __init__(self, docs: list[Any]) -> None:
        texts: list[str] = []
        self.numbers: set[int | float] = set()
        for doc in docs:
            for _, leaf in _leaves(doc, ""):
                if isinstance(leaf, str):
                    texts.append(_norm(leaf))
                    parsed = _json_of(leaf)
                    if parsed is not None:
                        texts.extend(_norm(v) for _, v in _leaves(parsed, "") if isinstance(v, str))
                elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
                    self.numbers.add(leaf)
            self._uncached_inputs(doc)
        self.text = "\x00".join(texts)

    def _uncached_inputs(self, value: Any) -> None:
        """ATIF prompt tokens include the cache; a source that counts the uncached part alone
        (Anthropic ``input_tokens``) is kept exactly when the cache parts are kept beside it."""
        if isinstance(value, list):
            for v in value:
                self._uncached_inputs(v)
        elif isinstance(value, dict):
            prompt = value.get("prompt_tokens")
            if isinstance(prompt, int):
                extra = value.get("extra") or {}
                created = extra.get("cache_creation_input_tokens") or extra.get("cache_creation_tokens") or 0
                self.numbers.add(prompt - (value.get("cached_tokens") or 0) - created)
            for v in value.values():
                self._uncached_inputs(v)

    def has(self, needle: Needle) -> bool:
        if needle.kind == "tokens":
            return needle.value in self.numbers
        return str(needle.value) in self.text


def missing(source: Path, output_docs: list[Any], ignore: set[str] | None = None) -> list[Needle]:
    """The needles of ``source`` that ``output_docs`` lack (``ignore`` lists allowed values)."""
    hay = Haystack(output_docs)
    return [n for n in needles(source) if not hay.has(n) and str(n.value) not in (ignore or set())]
