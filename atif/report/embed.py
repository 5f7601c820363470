"""Trajectories embedded in an HTML page: slimmed, cut to one page-wide length cap, packed.

Each trial's trajectory and ratings travel as gzipped JSON in base64 (an inert block of its
own), unpacked by the page only when the trial is opened. To keep a 1,000-trial page under
about 20 MB, long strings are cut (head and tail kept, a visible marker between) at one
page-wide length cap, the largest that fits the budget; token-id and logprob arrays are left
out and tool definitions reduced to their names.
"""

from __future__ import annotations

import base64
import bisect
import gzip
from collections.abc import Callable, Mapping
from typing import Any

import orjson

__all__ = ["MIN_CAP", "cut_text", "fit_blobs", "pack", "slim"]

MIN_CAP = 200
"""The shortest length a string is ever cut to."""

_MARKER_LEN = 80
_DROP_KEYS = frozenset({"prompt_token_ids", "completion_token_ids", "logprobs"})


def cut_text(s: str, cap: int) -> tuple[str, bool]:
    """``s`` cut to about ``cap`` characters (head and tail kept, a marker between); whether it was cut."""
    if len(s) <= cap:
        return s, False
    head = s[: int(cap * 0.75)]
    tail = s[len(s) - int(cap * 0.2):] if cap >= 50 else ""
    n = len(s) - len(head) - len(tail)
    return f"{head}\n\u2026[{n:,} characters elided in this page; the store keeps the full text]\u2026\n{tail}", True


def slim(value: Any, cap: int, lengths: list[int] | None = None) -> tuple[Any, bool]:
    """A copy of a trajectory fit for the page: strings over ``cap`` cut with a marker.

    Token-id and logprob arrays are dropped and tool definitions reduced to their names.
    Returns the copy and whether any text was cut; ``lengths``, when given, receives the
    length of every string of the copy.
    """
    cut = False
    record = lengths.append if lengths is not None else None

    def walk(v: Any) -> Any:
        nonlocal cut
        if isinstance(v, str):
            if len(v) > cap:
                v = cut_text(v, cap)[0]
                cut = True
            if record is not None:
                record(len(v))
            return v
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k in _DROP_KEYS:
                    continue
                if k == "tool_definitions" and isinstance(x, list):
                    out[k] = [_tool_name(t) for t in x]
                    continue
                out[k] = walk(x)
            return out
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value), cut


def _tool_name(t: Any) -> Any:
    if isinstance(t, dict):
        fn = t.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
        if isinstance(t.get("name"), str):
            return t["name"]
    return "?"


def pack(raw: bytes) -> str:
    """Base64 of gzipped bytes: inert inside a non-script ``<script>`` block, a fifth of the size."""
    return base64.b64encode(gzip.compress(raw, compresslevel=5, mtime=0)).decode("ascii")


def fit_blobs(trials: list[dict[str, Any]], docs: Mapping[str, Any], ratings: Mapping[str, list[dict[str, Any]]],
              instructions: Mapping[str, str], budget: int, max_cap: int) -> list[str]:
    """One packed block per trial (see ``pack``), fitted to ``budget`` bytes in total.

    ``docs`` maps trajectory id to the parsed trajectory. One cap on string length applies
    to the whole page, the largest that fits the budget, so short trajectories stay whole
    and only the longest texts are cut. The cap is found by bisection over the string
    lengths against a budget scaled by the compression ratio of a sample, then checked on
    the real output and tightened until it fits or reaches a floor.
    """
    blob = _blob_maker(docs, ratings, instructions)
    full = [blob(t, max_cap) for t in trials]
    raw_total = sum(len(r) for r, _ in full)
    step = max(1, len(full) // 50)
    sample = [r for r, _ in full[::step]]
    ratio = sum(map(len, sample)) / max(1, sum(len(pack(r)) for r in sample))
    cap = max_cap
    if raw_total > budget * ratio:
        lengths = sorted(n for _, ls in full for n in ls)
        cap = _fit_cap(lengths, raw_total, int(budget * ratio * 0.95), max_cap)
    while True:
        out = [pack(r if max(ls, default=0) <= cap else blob(t, cap)[0]) for t, (r, ls) in zip(trials, full, strict=False)]
        total = sum(len(b) for b in out)
        if total <= budget or cap <= MIN_CAP:
            return out
        # Cut text compresses worse than whole text; tighten and try again.
        cap = max(MIN_CAP, int(cap * min(0.85, budget / total)))


def _blob_maker(docs: Mapping[str, Any], ratings: Mapping[str, list[dict[str, Any]]],
                instructions: Mapping[str, str]) -> Callable[[dict[str, Any], int], tuple[bytes, list[int]]]:
    def blob(t: dict[str, Any], cap: int) -> tuple[bytes, list[int]]:
        lengths: list[int] = []
        doc = docs.get(t["trajectory_id"]) if t["trajectory_id"] else None
        slimmed, capped = slim(doc, cap, lengths) if doc is not None else (None, False)
        instr = instructions.get(t["task_name"])
        if instr:
            instr = cut_text(instr, cap)[0]
            lengths.append(len(instr))
        data = {"trajectory": slimmed, "ratings": ratings.get(t["trial_id"], []), "instruction": instr,
                "capped": capped}
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str), lengths

    return blob


def _fit_cap(lengths: list[int], total: int, budget: int, max_cap: int) -> int:
    """Largest cap whose estimated page size fits ``budget`` (``lengths`` sorted ascending)."""
    suffix = [0] * (len(lengths) + 1)
    for i in range(len(lengths) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + lengths[i]

    def size(cap: int) -> int:
        kept = int(cap * 0.95) + _MARKER_LEN
        i = bisect.bisect_right(lengths, kept)
        n_cut = len(lengths) - i
        return total - (suffix[i] - n_cut * kept)

    lo, hi = MIN_CAP, max_cap
    if size(lo) > budget:
        return lo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
