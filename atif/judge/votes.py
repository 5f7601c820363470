"""Repeated judge samples and panels of judge models: the majority of their votes.

A criterion with ``samples: k`` asks each model ``k`` times (at temperature 0.7 when the judge
block says 0, since identical calls at temperature 0 would only repeat one answer), and
``panel: [model, ...]`` asks several models. Each answer is one vote; the stored verdict is the
majority of the scored votes, with every vote kept in the rating (``votes``) and the fraction
of scored votes that agree with the majority (``agreement``). A tie, or no scored vote at all,
is ``UNSCORED`` with the reason; a vote that failed (a model that refused every call, an
endpoint that does not answer) is kept with its error and does not count. Every sample has its
own cache entry (sample 0 shares the single call's key) and its own cost; the rating holds their
sums.

A panel entry may carry its own endpoint: ``{model, api_base, api_key_env, params}`` sends that
model's calls to ``api_base`` with the key read from the environment variable ``api_key_env``
and ``params`` added to each litellm call. Its votes name the ``api_base``; its cache entries
are its own (the endpoint and the extra parameters are part of the key).

:class:`Voting` holds the judge run's side of it (a base of the engine's run, kept apart so
the engine's single-call path stays as it is).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atif.errors import CriteriaError, JudgeError
from atif.judge.criteria import PanelMember
from atif.judge.fit import fit
from atif.judge.pacing import WRITE
from atif.judge.setup import JudgeSetup, build_setup, is_local
from atif.judge.verdict import parse_verdict

__all__ = ["SAMPLE_TEMPERATURE", "Tally", "Voting", "panel_members", "sample_key", "tally"]

SAMPLE_TEMPERATURE = 0.7
"""Temperature of repeated samples when the judge block asks for 0."""


def sample_key(key: str, sample: int) -> str:
    """The cache key of sample ``sample`` (0-based) of a prompt: sample 0 shares the single-call key."""
    return key if sample == 0 else hashlib.sha256(f"{key}#sample{sample}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Tally:
    """The outcome of a vote."""

    verdict: str
    """``YES``, ``NO`` or ``UNSCORED`` (tie, or no scored vote)."""
    agreement: float | None
    """Fraction of the scored votes that agree with the majority (None without scored votes)."""
    error: str | None
    """Why the verdict is ``UNSCORED``."""
    winner: int | None
    """Index of the first vote that agrees with the verdict (its reasoning is stored)."""


def tally(votes: Sequence[dict[str, Any]]) -> Tally:
    """The majority of ``votes`` (each with ``verdict`` and, when it failed, ``error`` and ``model``)."""
    yes = sum(1 for v in votes if v["verdict"] == "YES")
    no = sum(1 for v in votes if v["verdict"] == "NO")
    missing = [v for v in votes if v["verdict"] not in ("YES", "NO")]
    note = ""
    if missing:
        reasons = sorted({f"{v.get('model')}: {v.get('error') or 'no verdict'}" for v in missing})
        note = f"; {len(missing)} vote(s) missing ({'; '.join(reasons)[:300]})"
    if yes + no == 0:
        return Tally("UNSCORED", None, f"no vote had a verdict{note}", None)
    if yes == no:
        return Tally("UNSCORED", 0.5, f"tie: {yes} YES, {no} NO{note}", None)
    verdict = "YES" if yes > no else "NO"
    winner = next(i for i, v in enumerate(votes) if v["verdict"] == verdict)
    return Tally(verdict, max(yes, no) / (yes + no), None, winner)


def panel_members(panel: Sequence[Any]) -> list[PanelMember]:
    """Panel entries as stored (model strings, or ``{model, api_base, ...}`` mappings) as :class:`PanelMember`."""
    out = []
    for entry in panel:
        if isinstance(entry, PanelMember):
            out.append(entry)
        elif isinstance(entry, str):
            out.append(PanelMember(model=entry))
        else:
            out.append(PanelMember.model_validate(entry))
    return out


def _with_params(key: str, params: dict[str, Any] | None) -> str:
    """A cache key that also covers a panel entry's extra litellm parameters."""
    if not params:
        return key
    return hashlib.sha256(f"{key}#{json.dumps(params, sort_keys=True, default=str)}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Member:
    """A panel entry ready to ask: its setup and extra litellm parameters."""

    setup: JudgeSetup
    params: dict[str, Any] | None
    api_base: str | None
    """The entry's own endpoint (None when it uses the run's)."""


class Voting:
    """How the judge run asks samples and panels; mixed into :class:`atif.judge.engine._Run`."""

    def _voting(self: Any, item: Any) -> tuple[int, list[PanelMember] | None]:
        """Samples per model and the panel of models for one llm criterion (the criterion's own first)."""
        samples = int(item.config.get("samples") or self.cfg.samples)
        panel = item.config.get("panel") or self.cfg.panel
        return samples, panel_members(panel) if panel else None

    def _panel_setup(self: Any, entry: PanelMember, samples: int) -> _Member:
        """How to ask ``entry`` (the run's own setup, or one built for a panel member), cached per run."""
        members: dict[str, _Member] = self.__dict__.setdefault("panel_setups", {})
        ident = json.dumps([entry.model_dump(), samples], sort_keys=True, default=str)
        if ident not in members:
            base = self.setup
            assert base is not None
            own = entry.api_base is None and entry.api_key_env is None
            if entry.model == base.model and own:
                setup = base
            else:
                if is_local(entry.model):
                    raise JudgeError(f"panel model {entry.model}: the offline model can only be the run's own judge")
                api_key = None
                if entry.api_key_env:
                    api_key = os.environ.get(entry.api_key_env)
                    if not api_key:
                        raise JudgeError(f"panel model {entry.model}: environment variable {entry.api_key_env} "
                                         "is not set")
                cfg = self.cfg.model_copy(update={"model": entry.model,
                                                  "api_base": entry.api_base or self.cfg.api_base})
                setup = build_setup(cfg, api_key=api_key)
            if samples > 1 and setup.temperature == 0:
                setup = dataclasses.replace(setup, temperature=SAMPLE_TEMPERATURE)
            members[ident] = _Member(setup, entry.params, entry.api_base)
        return members[ident]

    async def _judge_votes(self: Any, item: Any, data: Any, samples: int, panel: Sequence[Any]) -> None:
        """Ask every panel model ``samples`` times and store the majority with every vote."""
        votes: list[dict[str, Any]] = []
        for entry in panel_members(panel):
            where = {"api_base": entry.api_base} if entry.api_base else {}
            try:
                member = self._panel_setup(entry, samples)
            except (JudgeError, CriteriaError) as exc:
                votes += [{"model": entry.model, **where, "sample": i, "verdict": "UNSCORED", "error": str(exc)}
                          for i in range(samples)]
                continue
            votes += await asyncio.gather(*(self._vote(item, data, member, i) for i in range(samples)))
        if self.abort:
            self.summary.not_started += 1
            return
        result = tally(votes)
        chosen = votes[result.winner] if result.winner is not None else {}
        scored = [v for v in votes if not v.get("cached")]

        def total(key: str) -> Any:
            values = [v[key] for v in scored if v.get(key) is not None]
            return sum(values) if values else None

        shown = [{k: v[k] for k in ("model", "api_base", "sample", "verdict", "error") if v.get(k) is not None}
                 for v in votes]
        await self._save(item, result.verdict, "judge", reasoning=chosen.get("reasoning"),
                         cited_steps=chosen.get("cited_steps"),
                         judge_model=", ".join(dict.fromkeys(m.model for m in panel_members(panel))),
                         cost_usd=total("cost_usd"), latency_ms=total("latency_ms"),
                         prompt_tokens=total("prompt_tokens"), completion_tokens=total("completion_tokens"),
                         cached_tokens=total("cached_tokens"), cached=all(v.get("cached") for v in votes),
                         truncated=any(v.get("truncated") for v in votes), cache_key=chosen.get("cache_key"),
                         prompt_version=self.setup.prompt_version if self.setup else None,
                         error=result.error, raw_output=chosen.get("raw_output"),
                         votes=json.dumps(shown), agreement=result.agreement)

    async def _vote(self: Any, item: Any, data: Any, member: _Member, sample: int) -> dict[str, Any]:
        """One sample of one model: from the cache, or asked; a failure is a vote with its error."""
        setup = member.setup
        vote: dict[str, Any] = {"model": setup.model, "sample": sample, "verdict": "UNSCORED"}
        if member.api_base:
            vote["api_base"] = member.api_base
        criterion = {"label": item.criterion, "question": item.question, "kind": item.kind}
        fitted = fit(data.ctx.views, lambda views: setup.messages(data.ctx, criterion, views), setup.count,
                     setup.budget, frame_id=data.ctx.frame_id)
        vote["truncated"] = fitted.truncated
        if not fitted.fits:
            return {**vote, "error": f"the prompt does not fit {setup.model}'s input budget of {setup.budget} tokens"}
        key = sample_key(_with_params(setup.cache_key(fitted.messages), member.params), sample)
        vote["cache_key"] = key
        if not self.rejudge:
            hit = await self.cache_reader.submit(key)
            if hit is not None:
                return {**vote, "verdict": hit["verdict"], "reasoning": hit.get("reasoning"),
                        "cited_steps": hit.get("cited_steps"), "raw_output": hit.get("raw_output"), "cached": True}
        if self.abort:
            return {**vote, "error": "the run was stopped"}
        outcome = await self._paid_call(fitted, {**setup.request(fitted.messages), **(member.params or {})})
        if outcome is None:
            return {**vote, "error": "--max-cost reached"}
        from atif.judge.client import Answer

        if not isinstance(outcome, Answer):
            where = f" at {member.api_base}" if member.api_base else ""
            return {**vote, "error": f"{outcome.kind}{where}: {outcome.message}"[:300]}
        verdict = parse_verdict(outcome.content, valid_steps=data.ctx.step_ids or None)
        usage = {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                 "cached_tokens": outcome.cached_tokens}
        if outcome.content and outcome.content.strip():
            entry = {"cache_key": key, "model": setup.model, "verdict": verdict.rating, "reasoning": verdict.reasoning,
                     "cited_steps": verdict.cited_steps, "cost_usd": outcome.cost_usd,
                     "latency_ms": outcome.latency_ms, "truncated": fitted.truncated, "raw_output": outcome.content,
                     "replace": self.rejudge, **usage}
            store = self.store
            await self.store_thread.call(WRITE, lambda: store.save_ratings([], cache=[entry]))
        return {**vote, "verdict": verdict.rating, "reasoning": verdict.reasoning, "cited_steps": verdict.cited_steps,
                "raw_output": outcome.content, "cost_usd": outcome.cost_usd, "latency_ms": outcome.latency_ms,
                "error": verdict.error, **usage}

