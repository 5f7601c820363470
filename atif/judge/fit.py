"""Fitting a trajectory into the judge model's input budget, visibly.

Long trajectories never fail silently and never lose their ends. When the rendered prompt is
over budget, text is cut from the middle, in this order, each cut leaving a marker the judge
can see:

1. the middle of long tool-call arguments and observations: ``[… 1234 chars elided …]``;
2. the middle of the run of steps (the first and last steps stay): ``[… 17 steps elided …]``;
3. the middle of any other long text (messages, reasoning).

With ``stages=READS_FIRST``, read-only tool steps (an agent step that only calls tools none of
which changes state, see :mod:`atif.judge.actions`) go before step 2, from the middle outwards:
the conversation and the actions the outcome depends on stay; each run of dropped steps is one
marker ``[… 5 steps elided …]``.

Whatever was cut, the rating is flagged ``truncated``. Token counts come from the caller (litellm's
tokenizer for models it knows, about four characters a token otherwise); a prompt whose UTF-8 size
is already within budget is never counted, since no tokenizer makes more tokens than bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from atif.judge.actions import is_read_only
from atif.judge.context import StepView, elision_marker

__all__ = ["READS_FIRST", "STAGES", "Fitted", "elide_middle", "fit", "quick_fits"]

Messages = list[dict[str, Any]]

MIN_FIELD_CHARS = 200
"""Text is never cut below this many characters per field (plus the marker)."""
STAGES: tuple[str, ...] = ("fields", "steps", "everything")
"""The cuts in the order they are tried. ``READS_FIRST`` adds ``reads`` before ``steps``: measured
on 20 labelled long runs (``bench/judge_long``) it did not change the small judge's accuracy, so
it is not the default."""
READS_FIRST: tuple[str, ...] = ("fields", "reads", "steps", "everything")
_MESSAGE_OVERHEAD = 8
_ROUNDS = 6


def elide_middle(text: str, cap: int, frame_id: str = "") -> str:
    """``text`` cut to about ``cap`` characters by removing its middle, with a marker saying how much."""
    if len(text) <= cap:
        return text
    cut = len(text) - cap
    head = cap // 2
    tail = cap - head
    return f"{text[:head]}{elision_marker(cut, 'chars', frame_id)}{text[len(text) - tail:]}"


@dataclass(slots=True)
class Fitted:
    """A prompt that fits (or the best attempt)."""

    views: list[StepView]
    """The steps as rendered (elided where needed)."""
    messages: Messages
    """The chat messages built from them."""
    tokens: int | None
    """Counted prompt tokens (None when the byte size alone proved the fit)."""
    truncated: bool
    """True when anything was elided."""
    fits: bool
    """False when even the shortest version is over budget."""


def _chars(messages: Messages) -> int:
    return sum(len(str(m.get("content") or "")) for m in messages)


def quick_fits(messages: Messages, budget: int) -> bool:
    """True when the prompt fits for certain: its UTF-8 size is within the budget."""
    total = _MESSAGE_OVERHEAD * len(messages)
    for m in messages:
        content = str(m.get("content") or "")
        # len() counts characters; UTF-8 needs at most 4 bytes each, usually 1.
        total += len(content) if content.isascii() else len(content.encode("utf-8", "surrogatepass"))
        if total > budget:
            return False
    return total <= budget


def _cap_fields(views: Sequence[StepView], cap: int, *, everything: bool, frame_id: str) -> list[StepView]:
    out = []
    for v in views:
        if v.elided_steps:
            out.append(v)
            continue
        calls = [
            {**c, "arguments": elide_middle(c["arguments"], cap, frame_id)} if len(c["arguments"]) > cap else c
            for c in v.tool_calls
        ]
        obs = [
            {**o, "content": elide_middle(o["content"] or "", cap, frame_id)} if len(o["content"] or "") > cap else o
            for o in v.observations
        ]
        changes: dict[str, Any] = {"tool_calls": calls, "observations": obs}
        if everything:
            changes["message"] = elide_middle(v.message, cap, frame_id)
            if v.reasoning:
                changes["reasoning"] = elide_middle(v.reasoning, cap, frame_id)
        out.append(replace(v, **changes))
    return out


def _field_lengths(views: Sequence[StepView], everything: bool) -> list[int]:
    lengths: list[int] = []
    for v in views:
        lengths.extend(len(c["arguments"]) for c in v.tool_calls)
        lengths.extend(len(o["content"] or "") for o in v.observations)
        if everything:
            lengths.append(len(v.message))
            if v.reasoning:
                lengths.append(len(v.reasoning))
    return lengths


def _cap_for(lengths: list[int], needed: float) -> int | None:
    """The largest per-field cap that removes at least ``needed`` characters (None if none does)."""
    if not lengths:
        return None

    def removed(cap: int) -> int:
        return sum(n - cap for n in lengths if n > cap)

    if removed(MIN_FIELD_CHARS) < needed:
        return MIN_FIELD_CHARS if removed(MIN_FIELD_CHARS) > 0 else None
    lo, hi = MIN_FIELD_CHARS, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if removed(mid) >= needed:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _size(v: StepView) -> int:
    return (40 + len(v.message) + len(v.reasoning or "") + sum(len(c["arguments"]) + 40 for c in v.tool_calls)
            + sum(len(o["content"] or "") + 30 for o in v.observations))


def _elide_reads(views: Sequence[StepView], needed: float, keep_ends: int = 2) -> list[StepView] | None:
    """Drop read-only tool steps, nearest the middle first, until ``needed`` characters went; None if none."""
    real = [i for i, v in enumerate(views) if not v.elided_steps]
    inner = set(real[keep_ends: len(real) - keep_ends])
    candidates = [i for i in inner if is_read_only(views[i])]
    if not candidates:
        return None
    middle = (real[0] + real[-1]) / 2
    candidates.sort(key=lambda i: (abs(i - middle), i))
    dropped: set[int] = set()
    removed = 0
    for i in candidates:
        if removed >= needed:
            break
        dropped.add(i)
        removed += _size(views[i])
    out: list[StepView] = []
    for i, v in enumerate(views):
        gone = v.elided_steps if v.elided_steps else (1 if i in dropped else 0)
        if not gone:
            out.append(v)
        elif out and out[-1].elided_steps:
            out[-1] = replace(out[-1], elided_steps=out[-1].elided_steps + gone)
        else:
            out.append(StepView(step_id=None, source="elided", elided_steps=gone))
    return out


def _elide_steps(views: Sequence[StepView], needed: float, keep_ends: int = 2) -> list[StepView] | None:
    """Drop a middle window of steps removing at least ``needed`` characters; None if impossible."""
    real = [v for v in views if not v.elided_steps]
    if len(real) <= 2 * keep_ends:
        return None
    sizes = [_size(v) for v in real]
    # Grow an earlier window rather than opening a second one: one marker, one count.
    before = next((i for i, v in enumerate(views) if v.elided_steps), None)
    lo = hi = before if before is not None else len(real) // 2  # the window is real[lo:hi]
    removed = 0
    left_turn = True
    while removed < needed:
        can_left, can_right = lo > keep_ends, hi < len(real) - keep_ends
        if not can_left and not can_right:
            break
        if (left_turn and can_left) or not can_right:
            lo -= 1
            removed += sizes[lo]
        else:
            removed += sizes[hi]
            hi += 1
        left_turn = not left_turn
    if hi - lo == 0:
        return None
    # The window spans the gap between the kept steps around it, markers in that gap included;
    # markers elsewhere (read-only steps dropped earlier) stay where they are.
    index = [i for i, v in enumerate(views) if not v.elided_steps]
    start = index[lo - 1] + 1 if lo > 0 else 0
    end = index[hi] if hi < len(index) else len(views)
    dropped = sum(v.elided_steps or 1 for v in views[start:end])
    marker = StepView(step_id=None, source="elided", elided_steps=dropped)
    return [*views[:start], marker, *views[end:]]


def fit(
    views: list[StepView],
    build: Callable[[list[StepView]], Messages],
    count: Callable[[Messages], int],
    budget: int,
    *,
    frame_id: str = "",
    stages: Sequence[str] | None = None,
) -> Fitted:
    """Render ``views`` with ``build`` and cut them until ``count`` says the messages fit ``budget``.

    ``frame_id`` goes into the markers of cut text, so that the judge tells them from look-alikes.
    """
    messages = build(views)
    if quick_fits(messages, budget):
        return Fitted(views, messages, None, False, True)
    tokens = count(messages)
    if tokens <= budget:
        return Fitted(views, messages, tokens, False, True)

    current = views
    for stage in stages or STAGES:
        slack = 1.05
        for _ in range(_ROUNDS):
            ratio = max(_chars(messages), 1) / max(tokens, 1)
            needed = (tokens - budget) * ratio * slack + 16
            if stage == "reads":
                candidate = _elide_reads(current, needed)
            elif stage == "steps":
                candidate = _elide_steps(current, needed)
            else:
                everything = stage == "everything"
                cap = _cap_for(_field_lengths(current, everything), needed)
                candidate = (_cap_fields(current, cap, everything=everything, frame_id=frame_id)
                             if cap is not None else None)
            if candidate is None:
                break
            current = candidate
            messages = build(current)
            tokens = count(messages)
            if tokens <= budget:
                return Fitted(current, messages, tokens, True, True)
            slack *= 1.3
    return Fitted(current, messages, tokens, current is not views, False)
