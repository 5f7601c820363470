"""The built-in criteria library: criteria a criteria file takes with ``use: <name>``.

Two kinds, both listed in ``catalog.yaml`` (package data) with what they check, their
parameters and their known failure modes:

- ``function`` built-ins are exact checks decided by code (:mod:`atif.judge.library.exact`),
  deterministic and without a model;
- ``llm`` built-ins ship a tested question for the judge.

``builtin_criteria()`` lists them; ``builtin_criterion(name)`` gives one (an unknown name raises
``CriteriaError`` listing the close ones); ``run_builtin`` decides an exact check on one trial.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from atif._yaml import parse_yaml
from atif.errors import CriteriaError
from atif.judge.checks import CheckResult

__all__ = ["Builtin", "builtin_criteria", "builtin_criterion", "run_builtin"]


@dataclass(frozen=True, slots=True)
class Builtin:
    """One built-in criterion."""

    name: str
    """Its name, as ``use:`` gives it (and the default label)."""
    kind: str
    """``function`` (an exact check) or ``llm`` (a judged question)."""
    description: str
    """One line: what YES means."""
    question: str
    """The question (for ``llm`` built-ins, the prompt the judge answers); ``{param}`` filled in."""
    checks: str = ""
    """How an exact check decides (its heuristics)."""
    failure_modes: tuple[str, ...] = ()
    """Where it is known to be wrong."""
    params: dict[str, Any] = field(default_factory=dict)
    """Parameters and their defaults."""

    def resolve_params(self, given: Mapping[str, Any] | None, *, where: str = "") -> dict[str, Any]:
        """The defaults updated with ``given``; ``CriteriaError`` for a parameter it does not take."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            takes = ", ".join(sorted(self.params)) or "no parameters"
            raise CriteriaError(f"{where}built-in {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                                f"it takes {takes}")
        out = {**self.params, **given}
        for key in ("times", "max_steps", "max_tokens"):
            value = out.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise CriteriaError(f"{where}built-in {self.name!r}: {key} must be a whole number >= 1, not {value!r}")
        if "workspace" in out and not (isinstance(out["workspace"], list)
                                       and all(isinstance(w, str) for w in out["workspace"])):
            raise CriteriaError(f"{where}built-in {self.name!r}: workspace must be a list of folder paths")
        return out

    def render_question(self, params: Mapping[str, Any] | None = None) -> str:
        """The question with its parameters filled in."""
        values = {**self.params, **(params or {})}
        return self.question.format(**values) if values else self.question

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description, "question": self.question,
                "checks": self.checks, "failure_modes": list(self.failure_modes), "params": dict(self.params)}


@cache
def _catalog() -> dict[str, Builtin]:
    text = resources.files(__package__).joinpath("catalog.yaml").read_text(encoding="utf-8")
    data = parse_yaml(text, "atif/judge/library/catalog.yaml", CriteriaError)
    return {name: Builtin(name=name, kind=entry["kind"], description=entry["description"].strip(),
                          question=" ".join(entry["question"].split()), checks=entry.get("checks", ""),
                          failure_modes=tuple(entry.get("failure_modes") or ()), params=dict(entry.get("params") or {}))
            for name, entry in data.items()}


def builtin_criteria() -> list[Builtin]:
    """Every built-in criterion, exact checks first, each group by name."""
    return sorted(_catalog().values(), key=lambda b: (b.kind != "function", b.name))


def builtin_criterion(name: str) -> Builtin:
    """The built-in called ``name``; ``CriteriaError`` naming the close ones when there is none."""
    catalog = _catalog()
    if name in catalog:
        return catalog[name]
    close = difflib.get_close_matches(name, list(catalog), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise CriteriaError(f"no built-in criterion {name!r}{hint} (`atif criteria list` shows them all)")


def run_builtin(name: str, trajectory: Mapping[str, Any] | None, trial: Mapping[str, Any] | None,
                params: Mapping[str, Any] | None = None) -> CheckResult:
    """Decide the exact check ``name`` on one trial; a check that raises is ``UNSCORED`` with the reason."""
    from atif.judge.library.exact import EXACT_CHECKS

    entry = builtin_criterion(name)
    check = EXACT_CHECKS.get(name)
    if check is None:
        raise CriteriaError(f"built-in {name!r} is an {entry.kind} criterion, not an exact check")
    try:
        return check(trajectory, trial, **entry.resolve_params(params))
    except Exception as exc:  # noqa: BLE001 - a malformed trajectory must not stop the run
        return CheckResult("UNSCORED", error=f"built-in check {name!r} failed: {type(exc).__name__}: {exc}")
