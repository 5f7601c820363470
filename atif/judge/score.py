"""A score beside the word: ``p_yes`` from the verdict token's log-probabilities, and the threshold.

A small model asked for YES or NO says YES to nearly everything, yet how sure it is still
differs between a solved run and a failed one. When the provider returns log-probabilities
(llama.cpp and OpenAI do), :func:`p_yes` reads them at the verdict token: the probability
mass of tokens that start ``YES`` against those that start ``NO``, normalised over the two.
:func:`decide` turns it into the verdict with the criterion's threshold (default 0.5; set by
``atif calibrate --fit-threshold`` from labels). Without log-probabilities the verdict is the
word the model wrote, as before.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

__all__ = ["DEFAULT_THRESHOLD", "TokenLogprobs", "decide", "fit_threshold", "p_yes"]

DEFAULT_THRESHOLD = 0.5
"""The ``p_yes`` at and above which the verdict is YES, for a criterion with no fitted threshold."""

TokenLogprobs = tuple[str, list[tuple[str, float]]]
"""One generated token and its most likely alternatives (token, log-probability), the token among them."""

_ANSWER = re.compile(r"(?:answer|verdict)\W{0,3}\s*", re.IGNORECASE)


def _side(token: str) -> str | None:
    word = token.strip().strip('"*').upper()
    if not word:
        return None
    if "YES".startswith(word) or word.startswith("YES"):
        return "YES"
    if "NO".startswith(word) or (word.startswith("NO") and not word[2:3].isalpha()):
        return "NO"
    return None


def p_yes(tokens: Sequence[TokenLogprobs]) -> float | None:
    """P(YES) / (P(YES) + P(NO)) at the verdict token, or None when the tokens show no verdict.

    The verdict token is the first one saying YES or NO after the last ``Answer:`` (or
    ``verdict``) in the generated text; with no such label, the last YES/NO token.
    """
    text = "".join(t for t, _ in tokens)
    labels = list(_ANSWER.finditer(text))
    start = labels[-1].end() if labels else 0
    position = 0
    chosen: int | None = None
    for i, (token, _) in enumerate(tokens):
        end = position + len(token)
        if end > start and _side(token) is not None:
            chosen = i
            if labels:
                break
        position = end
    if chosen is None:
        return None
    mass = {"YES": 0.0, "NO": 0.0}
    for alternative, logprob in tokens[chosen][1]:
        side = _side(alternative)
        if side is not None and math.isfinite(logprob):
            mass[side] += math.exp(logprob)
    total = mass["YES"] + mass["NO"]
    return mass["YES"] / total if total > 0 else None


def decide(score: float | None, word: str, threshold: float | None) -> str:
    """The verdict: ``score`` against ``threshold`` when there is a score, else the model's ``word``."""
    if score is None or word == "UNSCORED":
        return word
    return "YES" if score >= (DEFAULT_THRESHOLD if threshold is None else threshold) else "NO"


def fit_threshold(scored: Sequence[tuple[float, bool]]) -> float | None:
    """The threshold that balances true-positive and true-negative rates best on labelled scores.

    ``scored`` holds ``(p_yes, label)`` pairs (label True: the answer should be YES). Every cut
    between two neighbouring scores is tried; the one with the highest balanced accuracy wins
    (ties: the cut nearest 0.5), placed midway between its neighbours. None without both labels.
    """
    positives = sum(1 for _, label in scored if label)
    negatives = len(scored) - positives
    if not positives or not negatives:
        return None
    values = sorted({score for score, _ in scored})
    cuts = [0.0] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [min(1.0, values[-1] + 1e-9)]
    best: tuple[float, float, float] | None = None
    for cut in cuts:
        tpr = sum(1 for score, label in scored if label and score >= cut) / positives
        tnr = sum(1 for score, label in scored if not label and score < cut) / negatives
        key = ((tpr + tnr) / 2, -abs(cut - DEFAULT_THRESHOLD), cut)
        if best is None or key > best:
            best = key
    assert best is not None
    return round(best[2], 4)
