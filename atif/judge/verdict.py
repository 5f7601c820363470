"""Reading a YES/NO verdict out of a judge model's answer.

Three tries, in order, and never a default:

1. strict JSON ``{"reasoning": str, "rating": "YES"|"NO", "cited_steps": [int]}`` (a Markdown code
   fence around it, or one JSON object inside prose, is accepted);
2. the final line, read as a person would: the last non-empty line is a verdict when it is
   ``YES`` or ``NO`` alone (``PASS``/``FAIL`` map to them; Markdown emphasis, quotes, brackets and
   a closing full stop around it are fine: ``**YES**``, ``[NO].``), or when it names the verdict
   after a cue word (``Answer: NO.``, ``Verdict - yes``, ``...so my verdict: YES``,
   ``Final answer is **NO** because ...``, ``<verdict>YES</verdict>``);
3. otherwise the answer is ``UNSCORED`` and the raw text is kept for inspection. A final line
   that names both verdicts (``YES or NO, hard to say``), or neither, is never guessed at; nor is a
   verdict word in running prose (``I think yes, the agent did it.``) or one that is negated
   (``the answer is not YES``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["OUTPUT_SCHEMA", "Verdict", "parse_verdict"]

Rating = Literal["YES", "NO", "UNSCORED"]

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string", "description": "A short justification that cites the evidence."},
        "rating": {"type": "string", "enum": ["YES", "NO"]},
        "cited_steps": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "Step numbers of the transcript the reasoning relies on.",
        },
    },
    "required": ["reasoning", "rating", "cited_steps"],
    "additionalProperties": False,
}
"""The JSON Schema the judge is asked to answer in (``response_format`` and the prompt)."""

_WORDS = {"YES": "YES", "NO": "NO", "PASS": "YES", "FAIL": "NO", "PASSED": "YES", "FAILED": "NO"}
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_LABEL = re.compile(
    r"^(?:final\s+)?(?:answer|verdict|rating|decision|grade|result)\s*[:=\-]\s*", re.IGNORECASE
)
# Markdown emphasis, quotes and brackets around a lone verdict word, and a closing full stop.
_DECORATION = " \t*_`\"'[](){}<>#>.!"
# Any verdict word standing alone in a line (not inside another word).
_ANY_WORD = re.compile(r"(?<![A-Za-z])(YES|NO|PASS|FAIL|PASSED|FAILED)(?![A-Za-z])", re.IGNORECASE)
# A cue, then the verdict word, then the end of the line or a separator before an explanation:
# "so my verdict: YES", "Answer - no.", "the final answer is **NO** because ...".
_CUED = re.compile(
    r"(?<![A-Za-z])(?:final\s+|overall\s+)?(?:answer|verdict|rating|decision|grade|result|judgement|judgment"
    r"|conclusion)(?![A-Za-z])\s*(?:(?:is|would\s+be|will\s+be|=)\s*)?[:=\-\u2013\u2014>]*\s*"
    r"[*_`\"'\[(]*(?P<word>YES|NO|PASS|FAIL|PASSED|FAILED)[*_`\"'\])]*"
    r"(?P<tail>\s*$|\s*[.,;:!)\u2013\u2014-]|\s+(?:because|since|as|-)\b)",
    re.IGNORECASE,
)
# Words leading into a cue ("..., so my verdict:"), dropped from the reasoning.
_LEAD_IN = re.compile(r"[\s,;:]*(?:\b(?:so|thus|therefore|hence|and)\b[\s,]*)?(?:\b(?:my|the|our|its)\b\s*)?$",
                      re.IGNORECASE)
_TAGGED = re.compile(r"<(verdict|answer|rating)>\s*(?P<word>[A-Za-z]+)\s*</\1>", re.IGNORECASE)


@dataclass(slots=True)
class Verdict:
    """What the judge answered."""

    rating: Rating
    """``YES``, ``NO``, or ``UNSCORED`` when no verdict could be read."""
    reasoning: str | None = None
    """The judge's justification (JSON ``reasoning``, or the prose above the verdict line)."""
    cited_steps: list[int] | None = None
    """Step ids the judge cited."""
    error: str | None = None
    """Why the verdict is ``UNSCORED``."""
    raw: str | None = None
    """The answer exactly as the model gave it."""
    how: str = field(default="none")
    """How the verdict was read: ``json``, ``line`` or ``none``."""


def _word(value: Any) -> str | None:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, str):
        return _WORDS.get(value.strip().strip(_DECORATION).upper())
    return None


def _steps(value: Any) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        value = [value]
    steps: list[int] = []
    for item in value:
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            steps.append(item)
        elif isinstance(item, float) and item.is_integer():
            steps.append(int(item))
        elif isinstance(item, str):
            m = re.fullmatch(r"\s*(?:step\s*)?(\d+)\s*", item, re.IGNORECASE)
            if m:
                steps.append(int(m.group(1)))
    return sorted(set(steps))


def _json_candidates(text: str) -> list[str]:
    stripped = text.strip()
    out = [stripped]
    fenced = _FENCE.match(stripped)
    if fenced:
        out.append(fenced.group(1).strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end and (start, end) != (0, len(stripped) - 1):
        out.append(stripped[start : end + 1])
    return out


def _from_json(text: str) -> tuple[Verdict | None, str | None]:
    """A verdict from a JSON answer; or (None, why the JSON was unusable) when JSON was found."""
    problem = None
    for candidate in _json_candidates(text):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if not isinstance(data, dict):
            problem = f"the answer is JSON but not an object ({type(data).__name__})"
            continue
        if "rating" not in data:
            problem = "the JSON answer has no `rating`"
            continue
        rating = _word(data["rating"])
        if rating is None:
            problem = f"the JSON `rating` is {data['rating']!r}, not YES or NO"
            continue
        reasoning = data.get("reasoning")
        return (
            Verdict(
                rating=rating,  # type: ignore[arg-type]
                reasoning=reasoning if isinstance(reasoning, str) else None,
                cited_steps=_steps(data.get("cited_steps")),
                raw=text,
                how="json",
            ),
            None,
        )
    return None, problem


def _line_verdict(line: str) -> tuple[str | None, str]:
    """The verdict a final line gives, or None; and the prose before the verdict on that line."""
    bare = _LABEL.sub("", line.strip().strip(_DECORATION)).strip(_DECORATION)
    if bare.upper() in _WORDS:
        return _WORDS[bare.upper()], ""
    # Capitalised verdict words are meant as verdicts; a lowercase "no" in prose is just a word.
    named = {_WORDS[m.group(1)] for m in _ANY_WORD.finditer(line) if m.group(1).isupper()}
    found = [(m.start(), _WORDS[m.group("word").upper()]) for m in _TAGGED.finditer(line)
             if m.group("word").upper() in _WORDS]
    found += [(m.start(), _WORDS[m.group("word").upper()]) for m in _CUED.finditer(line)]
    named |= {word for _, word in found}
    if not found or len(named) != 1:
        return None, ""  # no verdict named after a cue, or both named: never guess
    start = min(at for at, _ in found)
    return found[0][1], _LEAD_IN.sub("", line[:start]).strip().rstrip(",;:-").strip()


def _from_last_line(text: str) -> Verdict | None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    rating, before = _line_verdict(lines[-1])
    if rating is None:
        return None
    prose = "\n".join([*lines[:-1], before] if before else lines[:-1]).strip()
    prose = re.sub(r"^(?:reasoning|explanation|rationale)\s*:\s*", "", prose, flags=re.IGNORECASE)
    return Verdict(rating=rating, reasoning=prose or None, raw=text, how="line")  # type: ignore[arg-type]


def parse_verdict(text: str | None, *, valid_steps: set[int] | None = None) -> Verdict:
    """Read the verdict in a judge's answer; ``UNSCORED`` (with the raw text) when there is none.

    ``valid_steps`` drops cited step ids that do not exist in the trajectory.
    """
    if text is None or not text.strip():
        return Verdict(rating="UNSCORED", error="the judge returned an empty answer", raw=text)
    verdict, problem = _from_json(text)
    if verdict is None:
        verdict = _from_last_line(text)
    if verdict is None:
        why = problem or "no JSON verdict and no final YES/NO line in the answer"
        return Verdict(rating="UNSCORED", error=why, raw=text)
    if valid_steps is not None and verdict.cited_steps is not None:
        verdict.cited_steps = [s for s in verdict.cited_steps if s in valid_steps]
    return verdict
