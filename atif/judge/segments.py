"""Judging a trajectory longer than the judge's budget in overlapping segments, not by elision.

With ``long: segments`` (judge block or criterion), a prompt that does not fit the judge's input
budget is not cut in the middle: its steps are split into consecutive segments, each rendered
with the same templates (the task statement and the question are in every one) and judged on
its own. Consecutive segments share ``overlap`` steps (at most half a segment), so nothing that happens at a boundary is
seen only out of context. Each segment starts with a *summary by atif* of the rest of the run:
deterministic, built from the (already neutralised) steps, never by a model:

- which steps this segment holds, and which come before and after it;
- the tool calls of the earlier steps, in order (repeats folded: ``search_flights x3``; at
  most :data:`SUMMARY_CALLS`, the latest kept);
- the agent's last message before the segment (its middle cut to :data:`SUMMARY_MESSAGE_CHARS`).

The segment verdicts make the rating by the criterion's ``combine`` rule:

- ``any``: YES when a segment says YES ("did the agent ever ..."), NO when all say NO;
- ``all``: NO when a segment says NO ("did the agent always ..."), YES when all say YES;
- ``last``: the verdict of the segment holding the end of the run (outcome questions);
- ``final``: one more call reads every segment's verdict and one-line reasoning (in place of
  the transcript, with the task and question) and answers the question.

An unscored segment makes the rating UNSCORED only when the rule needs it (a YES for ``any``
stands whatever the others did). The rating is flagged ``segmented``; its ``votes`` hold one
``{segment, steps, verdict, error, cached, p_yes}`` object per segment (and ``segment: "final"``
for the final pass). Every segment call has its own cache entry (keyed by its messages) and
cost; the rating holds their sums. Segments are planned from the same steps elision starts
from (the compact transcript for small local models); a single step too long for a segment has
its long fields cut as :mod:`atif.judge.fit` does (the rating is then also ``truncated``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from atif.errors import JudgeError
from atif.judge.context import StepView, neutralise
from atif.judge.fit import Fitted, elide_middle, fit, quick_fits
from atif.judge.pacing import WRITE
from atif.judge.score import decide, p_yes
from atif.judge.verdict import parse_verdict

__all__ = ["COMBINE_RULES", "SUMMARY_CALLS", "SUMMARY_MESSAGE_CHARS", "Segment", "SegmentError", "Segmenting",
           "combine", "final_view", "plan_segments", "summary_view"]

Messages = list[dict[str, Any]]

COMBINE_RULES = ("any", "all", "last", "final")
SUMMARY_CALLS = 40
"""Earlier tool calls listed in a segment's summary at most (the latest ones)."""
SUMMARY_MESSAGE_CHARS = 300
"""The agent's last earlier message is cut to about this many characters."""
_FILL = 0.95
"""Segments are filled to this share of the budget by estimate, then counted exactly."""


class SegmentError(JudgeError):
    """The budget cannot hold even one step with the task, the question and the summary."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a trajectory, ready to send."""

    index: int
    """1-based position."""
    start: int
    """First step, as an index into the planned views."""
    end: int
    """One past the last step."""
    first_step: int | None
    last_step: int | None
    messages: Messages
    tokens: int | None
    truncated: bool
    """True when a step's own text had to be cut to fit."""


def _label(v: StepView) -> str:
    return str(v.step_id) if v.step_id is not None else "?"


def _calls(views: Sequence[StepView]) -> str:
    names = [c["function_name"] for v in views for c in v.tool_calls]
    folded: list[list[Any]] = []
    for name in names:
        if folded and folded[-1][0] == name:
            folded[-1][1] += 1
        else:
            folded.append([name, 1])
    shown = [f"{n} x{k}" if k > 1 else str(n) for n, k in folded]
    if len(shown) > SUMMARY_CALLS:
        shown = [f"(… {len(shown) - SUMMARY_CALLS} earlier)", *shown[-SUMMARY_CALLS:]]
    return ", ".join(shown) if shown else "none"


def summary_view(views: Sequence[StepView], start: int, end: int, frame_id: str = "") -> StepView:
    """atif's note heading the segment ``views[start:end]``: where it lies, and what came before."""
    n = len(views)
    lines = []
    if n:
        lines.append(f"The transcript (steps {_label(views[0])}-{_label(views[-1])}) is too long to read at once "
                     f"and is judged in parts. This part holds steps "
                     f"{_label(views[start]) if start < n else '-'}-{_label(views[end - 1]) if end > start else '-'}.")
    if start > 0:
        earlier = views[:start]
        lines.append(f"Steps {_label(earlier[0])}-{_label(earlier[-1])} come before this part. "
                     f"Their tool calls, in order: {_calls(earlier)}.")
        said = next((v.message for v in reversed(earlier) if v.source == "agent" and v.message.strip()), None)
        if said:
            lines.append("The agent's last message before this part: "
                         + " ".join(elide_middle(said, SUMMARY_MESSAGE_CHARS, frame_id).split()))
    if end < n:
        lines.append(f"Steps {_label(views[end])}-{_label(views[-1])} come after this part and are judged separately.")
    elif n:
        lines.append("This part ends the transcript.")
    return StepView(step_id=None, source="summary", message="\n".join(lines))


def plan_segments(views: Sequence[StepView], build: Callable[[list[StepView]], Messages],
                  count: Callable[[Messages], int], budget: int, *, overlap: int = 2,
                  frame_id: str = "") -> list[Segment]:
    """Split ``views`` into consecutive segments whose prompts (``build``) each fit ``budget`` tokens.

    Segment ``k + 1`` starts ``overlap`` steps before segment ``k`` ends, but repeats at most
    half of segment ``k`` (so that short segments still move on). Raises :class:`SegmentError`
    when not even one step fits.
    """
    views = list(views)
    n = len(views)
    # The largest summary (everything before the last step) bounds every segment's fixed part.
    fixed = count(build([summary_view(views, n, n, frame_id)]))
    if n == 0 or fixed >= budget:
        raise SegmentError(f"segments: the judge's input budget of {budget} tokens leaves no room for a step "
                           f"(the task, the question and the summary alone take {fixed} tokens); "
                           "raise judge.max_input_tokens or use long: elide")
    sizes = [_size(v) for v in views]
    empty = count(build([]))
    per_char = max(count(build(views)) - empty, 1) / max(sum(sizes), 1)
    room = (budget - fixed) * _FILL
    segments: list[Segment] = []
    start = 0
    while True:
        end, used = start, 0.0
        while end < n and (end == start or used + sizes[end] * per_char <= room):
            used += sizes[end] * per_char
            end += 1
        while True:
            part = [summary_view(views, start, end, frame_id), *views[start:end]]
            messages = build(part)
            tokens = None if quick_fits(messages, budget) else count(messages)
            if tokens is None or tokens <= budget:
                truncated = False
                break
            if end - start > 1:
                end = start + max(1, min(end - start - 1, int((end - start) * budget / tokens * _FILL)))
                continue
            fitted = fit(part, build, count, budget, frame_id=frame_id)
            if not fitted.fits:
                raise SegmentError(f"segments: step {_label(views[start])} does not fit the judge's input budget of "
                                   f"{budget} tokens even with its text cut ({fitted.tokens} tokens); "
                                   "raise judge.max_input_tokens")
            messages, tokens, truncated = fitted.messages, fitted.tokens, True
            break
        segments.append(Segment(len(segments) + 1, start, end, views[start].step_id, views[end - 1].step_id,
                                messages, tokens, truncated))
        if end >= n:
            return segments
        start = max(start + (end - start + 1) // 2, end - overlap)


def _size(v: StepView) -> int:
    return (40 + len(v.message) + len(v.reasoning or "") + sum(len(c["arguments"]) + 40 for c in v.tool_calls)
            + sum(len(o["content"] or "") + 30 for o in v.observations))


def _where(vote: dict[str, Any]) -> str:
    first, last = vote.get("steps") or (None, None)
    return f"segment {vote['segment']} (steps {first}-{last})"


def combine(rule: str, votes: Sequence[dict[str, Any]]) -> tuple[str, str | None, int | None]:
    """The rating from segment ``votes`` by ``rule`` (not ``final``): verdict, error, chosen vote's index."""
    verdicts = [v["verdict"] for v in votes]
    missing = [v for v in votes if v["verdict"] not in ("YES", "NO")]
    note = "; ".join(f"{_where(v)}: {v.get('error') or 'no verdict'}" for v in missing)[:300]
    if rule == "last":
        if not votes or verdicts[-1] not in ("YES", "NO"):
            return "UNSCORED", f"the last segment has no verdict ({note})", None
        return verdicts[-1], None, len(votes) - 1
    if rule not in ("any", "all"):
        raise JudgeError(f"unknown combine rule {rule!r}; use one of {', '.join(COMBINE_RULES)}")
    decisive, other = ("YES", "NO") if rule == "any" else ("NO", "YES")
    if decisive in verdicts:
        return decisive, None, verdicts.index(decisive)
    if missing:
        return "UNSCORED", f"no segment said {decisive} and {len(missing)} of {len(votes)} had no verdict ({note})", None
    return other, None, len(votes) - 1


def final_view(votes: Sequence[dict[str, Any]]) -> StepView:
    """The transcript of the ``final`` pass: each segment's verdict and reasoning, in order."""
    lines = [f"The transcript was too long to read at once, so it was judged in {len(votes)} overlapping parts. "
             "What each part showed about the question:"]
    for v in votes:
        first, last = v.get("steps") or (None, None)
        said = v["verdict"] if v["verdict"] in ("YES", "NO") else "no verdict"
        reason = " ".join(neutralise(str(v.get("reasoning") or v.get("error") or "")).split())
        lines.append(f"Part {v['segment']} (steps {first}-{last}): {said}. {elide_middle(reason, 400)}")
    return StepView(step_id=None, source="summary", message="\n".join(lines))


class Segmenting:
    """How the judge run asks segments; mixed into :class:`atif.judge.engine._Run`."""

    abort: str | None

    def _segment_settings(self: Any, item: Any) -> tuple[str, str, int]:
        """``long``, ``combine`` and ``overlap`` for one criterion (its own settings first)."""
        cfg = self.cfg
        long = item.config.get("long") or getattr(cfg, "long", "elide")
        rule = item.config.get("combine") or getattr(cfg, "combine", "all")
        overlap = item.config.get("overlap")
        overlap = int(overlap if overlap is not None else getattr(cfg, "overlap", 2))
        if long not in ("elide", "segments"):
            raise JudgeError(f"criterion {item.criterion!r}: unknown `long` {long!r}; use elide or segments")
        if rule not in COMBINE_RULES:
            raise JudgeError(f"criterion {item.criterion!r}: unknown `combine` {rule!r}; use one of "
                             f"{', '.join(COMBINE_RULES)}")
        return long, rule, overlap

    async def _judge_segments(self: Any, item: Any, data: Any) -> bool:
        """Judge ``item`` in segments when it asks for them and does not fit whole; False to judge it whole."""
        long, rule, overlap = self._segment_settings(item)
        if long != "segments":
            return False
        setup = self.setup
        criterion = {"label": item.criterion, "question": item.question, "kind": item.kind}

        def build(views: list[StepView]) -> Messages:
            return setup.messages(data.ctx, criterion, views)

        base = setup.base_views(data.ctx)
        whole = build(base)
        if quick_fits(whole, setup.budget) or setup.count(whole) <= setup.budget:
            return False
        compacted = base is not data.ctx.views
        try:
            segments = plan_segments(base, build, setup.count, setup.budget, overlap=overlap,
                                     frame_id=data.ctx.frame_id)
        except SegmentError as exc:
            await self._save(item, "UNSCORED", "judge", judge_model=setup.model, truncated=compacted, segmented=True,
                             prompt_version=setup.prompt_version, error=str(exc))
            return True
        votes = list(await asyncio.gather(*(self._segment_vote(item, data, s) for s in segments)))
        chosen: dict[str, Any] = {}
        if rule == "final" and any(v["verdict"] in ("YES", "NO") for v in votes) and not self.abort:
            fitted = fit([final_view(votes)], build, setup.count, setup.budget, frame_id=data.ctx.frame_id)
            final = await self._segment_vote(item, data, Segment(0, 0, 0, None, None, fitted.messages, fitted.tokens,
                                                                 fitted.truncated))
            final["segment"] = "final"
            final.pop("steps", None)
            votes.append(final)
            verdict, error = final["verdict"], (f"the final pass has no verdict: {final.get('error')}"
                                                if final["verdict"] not in ("YES", "NO") else None)
            chosen = final
        elif rule == "final":
            verdict, error = "UNSCORED", combine("all", votes)[1] or "no segment had a verdict"
        else:
            verdict, error, index = combine(rule, votes)
            chosen = votes[index] if index is not None else {}
        if self.abort:
            self.summary.not_started += 1
            return True
        fresh = [v for v in votes if not v.get("cached")]

        def total(key: str) -> Any:
            values = [v[key] for v in fresh if v.get(key) is not None]
            return sum(values) if values else None

        reasoning = chosen.get("reasoning")
        if reasoning and chosen.get("segment") != "final":
            reasoning = f"{_where(chosen)}: {reasoning}"
        shown = [{k: v[k] for k in ("segment", "steps", "verdict", "error", "cached", "p_yes", "truncated")
                  if v.get(k) is not None} for v in votes]
        await self._save(item, verdict, "judge", reasoning=reasoning, cited_steps=chosen.get("cited_steps"),
                         judge_model=setup.model, cost_usd=total("cost_usd"), latency_ms=total("latency_ms"),
                         prompt_tokens=total("prompt_tokens"), completion_tokens=total("completion_tokens"),
                         cached_tokens=total("cached_tokens"), cached=all(v.get("cached") for v in votes),
                         truncated=compacted or any(v.get("truncated") for v in votes), segmented=True,
                         cache_key=chosen.get("cache_key"), prompt_version=setup.prompt_version, error=error,
                         raw_output=chosen.get("raw_output"),
                         p_yes=chosen.get("p_yes") if rule in ("last", "final") else None, votes=json.dumps(shown))
        return True

    async def _segment_vote(self: Any, item: Any, data: Any, segment: Segment) -> dict[str, Any]:
        """One segment (or the final pass): from the cache, or asked; a failure is a vote with its error."""
        setup = self.setup
        vote: dict[str, Any] = {"segment": segment.index, "steps": [segment.first_step, segment.last_step],
                                "verdict": "UNSCORED", "truncated": segment.truncated}
        key = setup.cache_key(segment.messages)
        vote["cache_key"] = key
        threshold = item.config.get("threshold")
        if not self.rejudge:
            hit = await self.cache_reader.submit(key)
            if hit is not None:
                score = hit.get("p_yes")
                return {**vote, "verdict": decide(score, hit["verdict"], threshold), "reasoning": hit.get("reasoning"),
                        "cited_steps": hit.get("cited_steps"), "raw_output": hit.get("raw_output"), "p_yes": score,
                        "cached": True}
        if self.abort:
            return {**vote, "error": "the run was stopped"}
        fitted = Fitted([], segment.messages, segment.tokens, segment.truncated, True)
        outcome = await self._paid_call(fitted, setup.request(segment.messages))
        if outcome is None:
            return {**vote, "error": "--max-cost reached"}
        from atif.judge.client import Answer

        if not isinstance(outcome, Answer):
            if outcome.kind in ("auth", "not_found") and self.abort is None:
                self.abort = f"the judge model refused the request: {outcome.message}"
            return {**vote, "error": f"{outcome.kind}: {outcome.message}"[:300]}
        if outcome.cost_usd is None:
            self.summary.cost_unknown_calls += 1
        verdict = parse_verdict(outcome.content, valid_steps=data.ctx.step_ids or None)
        score = p_yes(outcome.logprobs) if outcome.logprobs and verdict.rating != "UNSCORED" else None
        usage = {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                 "cached_tokens": outcome.cached_tokens}
        if outcome.content and outcome.content.strip():
            entry = {"cache_key": key, "model": setup.model, "verdict": verdict.rating, "reasoning": verdict.reasoning,
                     "cited_steps": verdict.cited_steps, "cost_usd": outcome.cost_usd,
                     "latency_ms": outcome.latency_ms, "truncated": segment.truncated, "raw_output": outcome.content,
                     "p_yes": score, "replace": self.rejudge, **usage}
            store = self.store
            await self.store_thread.call(WRITE, lambda: store.save_ratings([], cache=[entry]))
        return {**vote, "verdict": decide(score, verdict.rating, threshold), "reasoning": verdict.reasoning,
                "cited_steps": verdict.cited_steps, "raw_output": outcome.content, "cost_usd": outcome.cost_usd,
                "latency_ms": outcome.latency_ms, "p_yes": score, "error": verdict.error, **usage}
