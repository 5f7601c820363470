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
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from atif.judge.context import StepView, elision_marker
from atif.judge.fit import elide_middle

__all__ = ["ARGUMENT_CHARS", "OUTPUT_CHARS", "REPEAT_CHARS", "compact_views"]

OUTPUT_CHARS = 480
"""Longest tool output kept whole; longer ones keep their start and end."""
ARGUMENT_CHARS = 240
"""Longest tool-call argument text kept whole."""
REPEAT_CHARS = 200
"""Texts at least this long are replaced by a reference when they repeat verbatim."""


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _repeat_marker(text: str, step: int | None, frame_id: str) -> str:
    where = f"step {step}" if step is not None else "an earlier step"
    return f"{elision_marker(len(text), 'chars', frame_id)} (same text as in {where})"


def compact_views(views: list[StepView], frame_id: str = "", *, output_chars: int = OUTPUT_CHARS,
                  argument_chars: int = ARGUMENT_CHARS) -> list[StepView]:
    """``views`` with repeated long texts referenced and tool outputs and arguments shortened.

    Returns the same list object when nothing was cut, so callers can tell (``is``).
    """
    seen: dict[str, int | None] = {}
    out: list[StepView] = []
    changed = False

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
        calls = [
            {**c, "arguments": elide_middle(c["arguments"], argument_chars, frame_id)}
            if len(c["arguments"]) > argument_chars else c
            for c in v.tool_calls
        ]
        observations = []
        for o in v.observations:
            content = once(o.get("content") or "", v.step_id)
            if len(content) > output_chars:
                content = elide_middle(content, output_chars, frame_id)
            observations.append({**o, "content": content} if content != (o.get("content") or "") else o)
        new = replace(v, message=message, tool_calls=calls, observations=observations)
        if message != v.message or calls != v.tool_calls or observations != v.observations:
            changed = True
            out.append(new)
        else:
            out.append(v)
    return out if changed else views
