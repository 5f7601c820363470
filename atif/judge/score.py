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
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from atif.errors import CriteriaError

__all__ = ["DEFAULT_THRESHOLD", "TokenLogprobs", "decide", "fit_threshold", "p_yes", "write_thresholds"]

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


def write_thresholds(path: str | os.PathLike[str], thresholds: Mapping[str, float]) -> None:
    """Set ``threshold:`` of each named criterion in a criteria file, keeping the rest of the file as it is.

    A YAML file is edited line by line (comments and layout stay): the criterion's ``threshold:``
    line is replaced, or one is added under its ``label:`` (or ``use:``) line. A JSON file is
    rewritten with the values set. The result is read back and checked before it replaces the
    file (atomically); a criterion the file lacks, or a layout this cannot edit, is a
    :class:`CriteriaError` and the file is left untouched.
    """
    from atif.judge.criteria import load_criteria, parse_criteria

    p = Path(path)
    current = load_criteria(p)
    labels = {c.label: i for i, c in enumerate(current.criteria)}
    missing = sorted(set(thresholds) - set(labels))
    if missing:
        raise CriteriaError(f"{p}: no criterion {missing[0]!r} to write a threshold for")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        data = json.loads(text)
        for label, value in thresholds.items():
            data["criteria"][labels[label]]["threshold"] = value
        new = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        lines = text.splitlines(keepends=True)
        for label, value in thresholds.items():
            lines = _set_yaml_threshold(lines, label, current.criteria[labels[label]].use, value, p)
        new = "".join(lines)
    from atif._yaml import parse_yaml

    check = parse_criteria(parse_yaml(new, p, CriteriaError), source=str(p), base_dir=p.parent)
    for label, value in thresholds.items():
        got = check.criteria[labels[label]]
        if got.label != label or got.threshold is None or abs(got.threshold - value) > 1e-9:
            raise CriteriaError(f"{p}: could not set the threshold of criterion {label!r} in this layout; "
                                f"add `threshold: {value}` to it by hand")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _set_yaml_threshold(lines: list[str], label: str, use: str | None, value: float, path: Path) -> list[str]:
    """``lines`` with ``threshold: value`` set in the block-style list item of criterion ``label``."""
    names = [re.escape(label)] + ([re.escape(use)] if use and use == label else [])
    key_line = re.compile(r"^(\s*)(- +)?(label|use):\s*([\"']?)(" + "|".join(names) + r")\4\s*(#.*)?$")
    for i, line in enumerate(lines):
        m = key_line.match(line.rstrip("\r\n"))
        if not m:
            continue
        indent = len(m.group(1)) + len(m.group(2) or "")
        # The list item starts at this line or at the nearest earlier "- " one indent out.
        start = i
        if not m.group(2):
            while start > 0 and not re.match(r"^\s*- ", lines[start]):
                start -= 1
        end = i + 1
        while end < len(lines):
            stripped = lines[end].strip()
            lead = len(lines[end]) - len(lines[end].lstrip(" "))
            if stripped and not stripped.startswith("#") and (lead < indent or stripped.startswith("- ") and lead < indent + 1):
                break
            end += 1
        pattern = re.compile(r"^(\s*(?:- +)?)threshold:.*?(\r?\n)?$")
        for j in range(start, end):
            lead = len(lines[j]) - len(lines[j].lstrip(" -"))
            t = pattern.match(lines[j])
            if t and lead == indent:
                lines[j] = f"{t.group(1)}threshold: {value}{t.group(2) or chr(10)}"
                return lines
        newline = "\r\n" if line.endswith("\r\n") else "\n"
        if not line.endswith(("\n", "\r")):
            lines[i] = line + newline
        lines.insert(i + 1, " " * indent + f"threshold: {value}{newline}")
        return lines
    raise CriteriaError(f"{path}: cannot find the `label: {label}` line of criterion {label!r}; "
                        f"add `threshold: {value}` to it by hand")
