"""What an evaluation run did: :class:`EvaluationSummary`, as text or plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvaluationSummary", "short_reason"]


@dataclass
class EvaluationSummary:
    """What an evaluation run did."""

    experiment: str
    model: str | None = None
    """The judge model (None when no ``llm`` criterion needed one)."""
    total: int = 0
    """Trial x criterion pairs taken up."""
    judged: int = 0
    """Fresh judge verdicts (YES or NO)."""
    yes: int = 0
    no: int = 0
    cached: int = 0
    """Ratings served from the judge cache, without a call."""
    function: int = 0
    """Ratings decided by function checks."""
    match: int = 0
    """Ratings decided by tool-call matching."""
    unscored: int = 0
    """Pairs recorded as ``UNSCORED``."""
    unscored_reasons: dict[str, int] = field(default_factory=dict)
    """Why, with how often."""
    truncated: int = 0
    """Judgements made on an elided transcript."""
    kept: int = 0
    """Pairs left alone because a human or pre-computed rating arrived meanwhile."""
    not_started: int = 0
    """Pairs left for a later run (budget reached)."""
    calls: int = 0
    """HTTP requests to the judge model, retries included."""
    retries: int = 0
    cost_usd: float | None = None
    """Judge cost of this run; None when no call had a known price."""
    cost_unknown_calls: int = 0
    """Calls whose price litellm does not know."""
    stopped: str | None = None
    """Why the run stopped early, if it did."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (for ``--format json``)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        lines = [f"Evaluated {self.experiment}" + (f" with {self.model}" if self.model else "")
                 + f": {self.total} pairs in {self.seconds:.1f} s"]
        if self.total == 0:
            lines.append("  nothing to evaluate: every trial x criterion pair already has a rating")
        rows = [
            ("judged", f"{self.judged} (YES {self.yes}, NO {self.no})" if self.judged else "0"),
            ("from cache", self.cached), ("function checks", self.function), ("tool-call match", self.match),
            ("unscored", self.unscored), ("truncated", self.truncated),
        ]
        if self.kept:
            rows.append(("kept (rated meanwhile)", self.kept))
        if self.not_started:
            rows.append(("left for later", self.not_started))
        if self.total:
            for name, value in rows:
                lines.append(f"  {name:<16} {value}")
            for reason, n in sorted(self.unscored_reasons.items(), key=lambda kv: -kv[1])[:10]:
                lines.append(f"    {n} x {reason}")
        if self.calls:
            cost = f"${self.cost_usd:.4f}" if self.cost_usd is not None else "unknown"
            if self.cost_usd is not None and self.cost_unknown_calls:
                cost += f" (+{self.cost_unknown_calls} calls of unknown price)"
            lines.append(f"  {'judge calls':<16} {self.calls} ({self.retries} retries), cost {cost}")
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        return "\n".join(lines)


def short_reason(text: str) -> str:
    """One line of at most 140 characters, for counting unscored reasons."""
    text = " ".join(text.split())
    return text if len(text) <= 140 else text[:139] + "…"
