"""The compact transcript small local models read: the same steps, with the bulk cut first.

A small model on a CPU reads about as fast as it can, so every token of a transcript costs
time, and tool outputs (search results, JSON records) and repeated boilerplate are most of
a real agent run while saying least about whether it succeeded. Before the budget fitting of
:mod:`atif.judge.fit` (which then cuts further if needed), :func:`compact_views`:

1. replaces a long text that already appeared earlier in the run (a system prompt re-sent
   each turn, a tool output fetched twice) by a marker naming the step that holds it;
2. cuts the middle of each tool output and tool-call argument list to a few hundred
   characters, with the usual elision marker (``[… 1234 chars elided <id> …]``).

Messages of the user and the agent, which carry the conversation, are left alone. Anything
cut is visible to the judge, and the rating is flagged ``truncated`` as for any elision.

The ``lean`` style (``style="lean"``) cuts further, for runs whose success is decided by what the
agent *did* (tau-bench-like tool use: the final state of a database): the task's instruction
already comes first in the small-model prompt, and then

- a *write* call (a tool whose name starts with a verb that changes state: ``book_…``,
  ``cancel_…``, ``update_…``, see ``WRITE_VERBS``) keeps its arguments whole, since they are the
  action the outcome depends on; its output keeps only its key fields;
- a *read* call's output (search results, records) is reduced to its key fields: a JSON object to
  its top-level scalar fields (nested lists and objects by their size), a list of objects to its
  length and each item's first value (an id), other text to its start;
- a system prompt (a policy the small model cannot hold anyway) keeps its start;
- long tool-call ids (``call_Ab7YHfneXdQk4tCXNRPh0C8u``, ~15 tokens, twice per call) become
  ``c1``, ``c2``, ... consistently for calls and their results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from atif.judge.actions import WRITE_VERBS, is_write
from atif.judge.context import StepView, elision_marker
from atif.judge.fit import elide_middle

__all__ = ["ARGUMENT_CHARS", "DEFAULT_STYLE", "KEY_CHARS", "OUTPUT_CHARS", "REPEAT_CHARS", "STYLES", "SYSTEM_CHARS",
           "WRITE_KEY_CHARS", "WRITE_VERBS", "compact_views", "is_write", "key_fields"]

STYLES = ("compact", "lean")
DEFAULT_STYLE = "compact"
"""The style :func:`compact_views` uses when none is given (the benchmark sets it to compare styles).

``lean`` is not the default: on 20 labelled long runs (``bench/judge_long``) it halved a run's
text before fitting but did not make the 0.5B judge rank solved and failed runs any better."""

OUTPUT_CHARS = 480
"""Longest tool output kept whole; longer ones keep their start and end."""
ARGUMENT_CHARS = 240
"""Longest tool-call argument text kept whole."""
REPEAT_CHARS = 200
"""Texts at least this long are replaced by a reference when they repeat verbatim."""
KEY_CHARS = 120
"""``lean``: longest key-field summary of a read call's output."""
WRITE_KEY_CHARS = 240
"""``lean``: longest key-field summary of a write call's output (what the action left behind)."""
SYSTEM_CHARS = 300
"""``lean``: longest system prompt kept (its start)."""
_SCALAR_CHARS = 40


def _scalar(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SCALAR_CHARS else text[: _SCALAR_CHARS - 2] + '…"'


def _first_value(item: Any) -> str:
    if isinstance(item, dict):
        for value in item.values():
            if not isinstance(value, (dict, list)):
                return _scalar(value)
        return "{…}"
    return _scalar(item) if not isinstance(item, list) else f"[{len(item)}]"


_FIRST_KEYS = ("status", "state", "result", "error", "success", "message", "id")


def _rank(key: str, value: Any) -> int:
    # Outcome fields first, then the other scalars, then the sizes of nested values.
    if any(word in key.lower() for word in _FIRST_KEYS) and not isinstance(value, (dict, list)):
        return 0
    return 2 if isinstance(value, (dict, list)) else 1


def _summary(value: Any) -> str | None:
    if isinstance(value, dict):
        value = dict(sorted(value.items(), key=lambda kv: _rank(kv[0], kv[1])))
        parts = [f'"{k}": {_scalar(v)}' if not isinstance(v, (dict, list))
                 else f'"{k}": {"[" if isinstance(v, list) else "{"}{len(v)} items{"]" if isinstance(v, list) else "}"}'
                 for k, v in value.items()]
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return f"[{len(value)} items: " + ", ".join(_first_value(v) for v in value) + "]"
    return None


def key_fields(text: str, cap: int = KEY_CHARS, frame_id: str = "") -> str:
    """A tool output reduced to its key fields, at most about ``cap`` characters, with a marker of what went.

    JSON objects keep their top-level scalars and the size of nested values; lists of objects
    their length and each item's first value; other text its start. Short texts stay as they are.
    """
    if len(text) <= cap:
        return text
    try:
        summary = _summary(json.loads(text))
    except ValueError:
        summary = None
    if summary is None:
        summary = text
    if len(summary) > cap:
        summary = summary[:cap]
    return f"{summary} {elision_marker(len(text) - len(summary), 'chars', frame_id)}"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _repeat_marker(text: str, step: int | None, frame_id: str) -> str:
    where = f"step {step}" if step is not None else "an earlier step"
    return f"{elision_marker(len(text), 'chars', frame_id)} (same text as in {where})"


def compact_views(views: list[StepView], frame_id: str = "", *, output_chars: int = OUTPUT_CHARS,
                  argument_chars: int = ARGUMENT_CHARS, style: str | None = None) -> list[StepView]:
    """``views`` with repeated long texts referenced and tool outputs and arguments shortened.

    ``style`` is ``compact`` or ``lean`` (see the module's docstring); ``DEFAULT_STYLE`` when None.
    Returns the same list object when nothing was cut, so callers can tell (``is``).
    """
    style = style or DEFAULT_STYLE
    if style not in STYLES:
        raise ValueError(f"unknown transcript style {style!r}; known: {', '.join(STYLES)}")
    lean = style == "lean"
    seen: dict[str, int | None] = {}
    out: list[StepView] = []
    changed = False
    short_ids: dict[str, str] = {}
    writes: set[str] = set()

    def short(call_id: str) -> str:
        if not lean or len(call_id) <= 8:
            return call_id
        return short_ids.setdefault(call_id, f"c{len(short_ids) + 1}")

    def once(text: str, step: int | None) -> str:
        if len(text) < REPEAT_CHARS:
            return text
        key = _key(text)
        if key in seen:
            return _repeat_marker(text, seen[key], frame_id)
        seen[key] = step
        return text

    for v in views:
        if v.elided_steps:
            out.append(v)
            continue
        message = once(v.message, v.step_id) if v.source == "system" else v.message
        if lean and v.source == "system" and len(message) > SYSTEM_CHARS:
            message = f"{message[:SYSTEM_CHARS]} {elision_marker(len(message) - SYSTEM_CHARS, 'chars', frame_id)}"
        calls = [
            {**c, "arguments": elide_middle(c["arguments"], argument_chars, frame_id)}
            if len(c["arguments"]) > argument_chars and not (lean and is_write(c["function_name"])) else c
            for c in v.tool_calls
        ]
        calls = [{**c, "tool_call_id": short(c["tool_call_id"])} if short(c["tool_call_id"]) != c["tool_call_id"]
                 else c for c in calls]
        writes.update(c["tool_call_id"] for c in v.tool_calls if is_write(c["function_name"]))
        observations = []
        for o in v.observations:
            content = once(o.get("content") or "", v.step_id)
            if lean:
                cap = WRITE_KEY_CHARS if o.get("source_call_id") in writes else KEY_CHARS
                content = key_fields(content, cap, frame_id)
            elif len(content) > output_chars:
                content = elide_middle(content, output_chars, frame_id)
            if content != (o.get("content") or ""):
                o = {**o, "content": content}
            sid = o.get("source_call_id")
            if sid and short(sid) != sid:
                o = {**o, "source_call_id": short(sid)}
            observations.append(o)
        new = replace(v, message=message, tool_calls=calls, observations=observations)
        if message != v.message or calls != v.tool_calls or observations != v.observations:
            changed = True
            out.append(new)
        else:
            out.append(v)
    return out if changed else views
