"""Small statistics for reports: intervals, tests, agreement.

Everything but the bootstrap is pure Python over counts or modest lists (aggregation happens in
SQL). The bootstrap resamples up to millions of pairs, so it runs on numpy arrays.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BOOTSTRAP_BUDGET",
    "MIN_RESAMPLES",
    "Z95",
    "BootstrapResult",
    "binary_metrics",
    "bootstrap_counted_ci",
    "bootstrap_mean_ci",
    "cohen_kappa",
    "kappa_interval",
    "mcnemar_exact",
    "mean",
    "percentile",
    "rogan_gladen",
    "rogan_gladen_interval",
    "wilson_interval",
]

Z95 = 1.959963984540054
"""Two-sided 95% quantile of the standard normal distribution."""

BOOTSTRAP_BUDGET = 24_000_000
"""Work of one bootstrap, in random indices: 2,000 resamples of 12,000 (a second or less on one core)."""

MIN_RESAMPLES = 200
"""Fewest resamples a percentile interval rests on; below it the interval is the normal one."""

# One binomial of a multinomial draw costs about six random indices (measured with numpy 2).
_BINOMIAL_COST = 6


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean (``math.fsum``), or None for no values."""
    return math.fsum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) with linear interpolation, as DuckDB's ``quantile_cont``.

    None for no values.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (95% by default); None when ``n`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 and n successes.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not in [0, {n}]")
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    # At 0 and n successes the bound is exactly 0 or 1; rounding would leave 1e-16 off.
    lo = 0.0 if successes == 0 else max(0.0, (centre - half) / denom)
    hi = 1.0 if successes == n else min(1.0, (centre + half) / denom)
    return lo, hi


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Under the null hypothesis each discordant pair falls either way with probability
    1/2, so the p-value is the two-sided binomial tail ``min(1, 2 * P(X <= min(b, c)))``
    with ``X ~ Binomial(b + c, 1/2)``. With no discordant pairs the p-value is 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # Sum in log space: n can be in the millions. The terms grow with i up to k <= n/2, so they
    # are summed from i = k down and the sum stops once a term is below 2**-60 of the largest:
    # the rest cannot change the double result, and about 40 sqrt(n) terms are left at most.
    log_half_n = n * math.log(0.5)
    top = _log_comb(n, k) + log_half_n
    terms = []
    for i in range(k, -1, -1):
        t = _log_comb(n, i) + log_half_n - top
        if t < -41.6 - math.log(k + 1):
            break
        terms.append(math.exp(t))
    tail = math.exp(top) * math.fsum(terms)
    return min(1.0, 2.0 * tail)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """Mean of paired differences with a percentile bootstrap interval (or a normal one, see ``method``)."""

    n: int
    """Number of pairs."""
    mean: float | None
    """Observed mean difference."""
    ci_low: float | None
    """Lower bound of the interval (None with fewer than 2 pairs)."""
    ci_high: float | None
    """Upper bound of the interval (None with fewer than 2 pairs)."""
    resamples: int
    """Bootstrap resamples drawn (0 when the interval is the normal one)."""
    level: float
    """Coverage of the interval, e.g. 0.95."""
    seed: int
    """Seed of the resampling generator; the same inputs and seed give the same interval."""
    method: str = "bootstrap"
    """``"bootstrap"`` (percentile interval of the resampled means) or ``"normal"`` (mean ± z·s/√n,
    when the budget affords fewer than :data:`MIN_RESAMPLES` resamples), ``"none"`` under 2 pairs."""


def bootstrap_mean_ci(
    diffs: Sequence[float] | Any, *, resamples: int = 2000, level: float = 0.95, seed: int = 0,
    budget: int = BOOTSTRAP_BUDGET,
) -> BootstrapResult:
    """Percentile bootstrap interval of the mean of paired differences, in time linear in their number.

    A resample of n pairs drawn with replacement is fully described by how many times it holds
    each distinct value, a multinomial draw over those values; so values are counted once
    (``numpy.unique``) and each resample costs one binomial per distinct value, or n random
    indices when almost every value is distinct, whichever is cheaper. The draws come from
    ``numpy.random.default_rng(seed)``: the same inputs and seed give the same interval.

    ``budget`` bounds the work of one call in units of one random index (a binomial counts as
    :data:`_BINOMIAL_COST`): at most ``budget // cost`` resamples are drawn, never more, and
    ``resamples`` in the result says how many ran. When the budget affords fewer than
    :data:`MIN_RESAMPLES` (so many distinct values that the tails of a percentile interval would
    rest on a handful of resamples), the interval is the normal one, mean ± z·s/√n, which the
    central limit theorem makes accurate at exactly those sizes; ``method`` says which.
    """
    import numpy as np

    values, counts = np.unique(np.asarray(diffs, dtype=np.float64).ravel(), return_counts=True)
    return bootstrap_counted_ci(values, counts, resamples=resamples, level=level, seed=seed, budget=budget)


def bootstrap_counted_ci(
    values: Sequence[float] | Any, counts: Sequence[int] | Any, *, resamples: int = 2000, level: float = 0.95,
    seed: int = 0, budget: int = BOOTSTRAP_BUDGET,
) -> BootstrapResult:
    """:func:`bootstrap_mean_ci` of the differences given as distinct ``values`` and how often each occurs.

    The same differences give the same result either way, to the last bit: the mean and the
    standard deviation are exactly rounded sums (as ``math.fsum`` of every difference) and the
    resampling draws the same numbers. A caller that can count the differences where they are
    (``GROUP BY`` in the store) passes thousands of values instead of millions.
    """
    import numpy as np

    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} must be in (0, 1)")
    if resamples < 1:
        raise ValueError(f"resamples {resamples} must be at least 1")
    vs = np.asarray(values, dtype=np.float64).ravel()
    cs = np.asarray(counts, dtype=np.int64).ravel()
    if vs.size != cs.size or (cs.size and cs.min() < 0):
        raise ValueError("values and counts must have the same length and counts must be >= 0")
    # Sorted and merged, so the interval does not depend on the order the values were read in.
    vs, inverse = np.unique(vs, return_inverse=True)
    cs = np.bincount(inverse.ravel(), weights=cs, minlength=vs.size).astype(np.int64)
    n = int(cs.sum())
    if n == 0:
        return BootstrapResult(0, None, None, None, 0, level, seed, "none")
    m = _exact_weighted_sum(vs, cs) / n
    if n < 2:
        return BootstrapResult(n, m, None, None, 0, level, seed, "none")
    alpha = (1.0 - level) / 2.0
    # Differences of equal decimals differ in their last bits (0.3 - 0.1 != 0.5 - 0.3); values equal
    # to 12 significant digits count as one, which moves no mean by more than clean() keeps.
    rounded, where = np.unique(_significant(vs, 12), return_inverse=True)
    k = int(rounded.size)
    by_count = k * _BINOMIAL_COST < n
    cost = k * _BINOMIAL_COST if by_count else n
    b = min(resamples, budget // cost)
    if b < MIN_RESAMPLES:
        sd = math.sqrt(_exact_weighted_sum((vs - m) ** 2, cs) / (n - 1))
        z = _normal_quantile(1.0 - alpha)
        half = z * sd / math.sqrt(n)
        return BootstrapResult(n, m, m - half, m + half, 0, level, seed, "normal")
    rng = np.random.default_rng(seed)
    means = np.empty(b, dtype=np.float64)
    # Chunks of about a million cells keep memory bounded whatever n and b are.
    chunk = max(1, 1_000_000 // (k if by_count else n))
    if by_count:
        p = np.bincount(where.ravel(), weights=cs, minlength=k).astype(np.int64) / n
    else:
        xs = np.repeat(vs, cs)  # every difference, sorted
    for start in range(0, b, chunk):
        size = min(chunk, b - start)
        if by_count:
            weights = rng.multinomial(n, p, size=size)
            means[start:start + size] = (weights * rounded).sum(axis=1) / n
        else:
            idx = rng.integers(0, n, size=(size, n))
            means[start:start + size] = xs[idx].sum(axis=1) / n
    means.sort()
    lo = percentile(means.tolist(), alpha)
    hi = percentile(means.tolist(), 1.0 - alpha)
    return BootstrapResult(n, m, lo, hi, b, level, seed)


def _exact_weighted_sum(values: Any, counts: Any) -> float:
    """``math.fsum`` of each value repeated its count times, in time linear in the number of values.

    Each value is split (Dekker) into two halves of at most 26 significant bits, so that a half
    times a count below 2**26 is exact; fsum of the exact products is then the correctly rounded
    sum, the same double as summing every repetition. Larger counts or values near overflow are
    summed repetition by repetition, which gives the same result more slowly.
    """
    import numpy as np

    if not values.size:
        return 0.0
    if counts.max() >= 2**26 or not np.isfinite(values).all() or np.abs(values).max() > 1e290:
        return math.fsum(np.repeat(values, counts).tolist())
    c = values * 134217729.0  # 2**27 + 1
    hi = c - (c - values)
    lo = values - hi
    w = counts.astype(np.float64)
    return math.fsum((hi * w).tolist() + (lo * w).tolist())


def _significant(xs: Any, digits: int) -> Any:
    """``xs`` rounded to ``digits`` significant digits (zeros and non-finite values unchanged)."""
    import numpy as np

    ax = np.abs(xs)
    ok = np.isfinite(ax) & (ax > 0)
    exp = np.zeros_like(xs)
    exp[ok] = np.floor(np.log10(ax[ok]))
    scale = 10.0 ** (digits - 1 - exp)
    out = np.where(ok, np.round(xs * scale) / scale, xs)
    return out


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (``statistics.NormalDist``, exact to double precision)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def cohen_kappa(matrix: dict[str, dict[str, int]]) -> float | None:
    """Cohen's kappa of two raters from a confusion matrix ``{rater_a: {rater_b: count}}``.

    Categories are the union of both raters' labels. None when there are no pairs or the
    chance agreement is 1 (both raters always gave the same single label), where kappa
    is undefined.
    """
    labels = sorted(set(matrix) | {b for row in matrix.values() for b in row})
    total = sum(v for row in matrix.values() for v in row.values())
    if total == 0:
        return None
    po = sum(matrix.get(k, {}).get(k, 0) for k in labels) / total
    pe = 0.0
    for k in labels:
        row = sum(matrix.get(k, {}).values())
        col = sum(matrix.get(a, {}).get(k, 0) for a in matrix)
        pe += (row / total) * (col / total)
    if math.isclose(pe, 1.0):
        return None
    return (po - pe) / (1.0 - pe)


def kappa_interval(matrix: dict[str, dict[str, int]], z: float = Z95) -> tuple[float, float] | None:
    """A 95% interval of Cohen's kappa (the large-sample standard error of Cohen, 1960), clipped to [-1, 1].

    None when kappa is undefined.
    """
    kappa = cohen_kappa(matrix)
    total = sum(v for row in matrix.values() for v in row.values())
    if kappa is None or total == 0:
        return None
    labels = sorted(set(matrix) | {b for row in matrix.values() for b in row})
    po = sum(matrix.get(k, {}).get(k, 0) for k in labels) / total
    pe = sum((sum(matrix.get(k, {}).values()) / total) * (sum(matrix.get(a, {}).get(k, 0) for a in matrix) / total)
             for k in labels)
    se = math.sqrt(po * (1.0 - po) / (total * (1.0 - pe) ** 2))
    return max(-1.0, kappa - z * se), min(1.0, kappa + z * se)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _metric(value: float | None, ci: tuple[float, float] | None) -> dict[str, float | None]:
    return {"value": value, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}


def _around(point: float | None, ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """The interval widened to hold its point estimate (a posterior interval can miss a boundary point)."""
    if point is None or ci is None:
        return None
    return min(ci[0], point), max(ci[1], point)


def binary_metrics(matrix: dict[str, dict[str, int]], *, draws: int = 4000,
                   seed: int = 0) -> dict[str, dict[str, float | None]]:
    """Judge-vs-reference metrics with 95% intervals from a ``{judge: {reference: count}}`` YES/NO matrix.

    TPR (= recall), TNR and precision: Wilson intervals. Balanced accuracy and F1: a seeded
    Monte Carlo over the four cell probabilities drawn from their Dirichlet posterior (Jeffreys
    prior, counts + 1/2), percentile interval. Cohen's kappa: :func:`kappa_interval`. A metric
    whose denominator is empty is None.
    """
    tp, fp = matrix["YES"]["YES"], matrix["YES"]["NO"]
    fn, tn = matrix["NO"]["YES"], matrix["NO"]["NO"]

    def ba(tp: float, fp: float, fn: float, tn: float) -> float | None:
        if tp + fn == 0 or tn + fp == 0:
            return None
        return (tp / (tp + fn) + tn / (tn + fp)) / 2.0

    def f1(tp: float, fp: float, fn: float, tn: float) -> float | None:
        return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None

    intervals: dict[str, tuple[float, float] | None] = {}
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {"ba": [], "f1": []}
    if tp + fp + fn + tn:
        for _ in range(draws):
            cells = [rng.gammavariate(c + 0.5, 1.0) for c in (tp, fp, fn, tn)]
            for name, fn_ in (("ba", ba), ("f1", f1)):
                value = fn_(*cells)
                if value is not None:
                    samples[name].append(value)
    for name, values in samples.items():
        lo, hi = percentile(values, 0.025), percentile(values, 0.975)
        intervals[name] = (lo, hi) if lo is not None and hi is not None else None
    point_ba, point_f1 = ba(tp, fp, fn, tn), f1(tp, fp, fn, tn)
    return {
        "tpr": _metric(_ratio(tp, tp + fn), wilson_interval(tp, tp + fn)),
        "tnr": _metric(_ratio(tn, tn + fp), wilson_interval(tn, tn + fp)),
        "precision": _metric(_ratio(tp, tp + fp), wilson_interval(tp, tp + fp)),
        "recall": _metric(_ratio(tp, tp + fn), wilson_interval(tp, tp + fn)),
        "f1": _metric(point_f1, _around(point_f1, intervals["f1"])),
        "balanced_accuracy": _metric(point_ba, _around(point_ba, intervals["ba"])),
        "kappa": _metric(cohen_kappa(matrix), kappa_interval(matrix)),
    }


def rogan_gladen(observed: float, sensitivity: float, specificity: float) -> float | None:
    """The true rate behind an ``observed`` rate measured with a known error (Rogan and Gladen, 1978).

    ``(observed + specificity - 1) / (sensitivity + specificity - 1)``, clipped to [0, 1]; None
    when the judge is no better than chance (Youden's J = sensitivity + specificity - 1 <= 0).
    """
    j = sensitivity + specificity - 1.0
    if j <= 0:
        return None
    return min(1.0, max(0.0, (observed + specificity - 1.0) / j))


def rogan_gladen_interval(n_yes: int, n: int, matrix: dict[str, dict[str, int]], *, draws: int = 4000,
                          seed: int = 0) -> tuple[float, float, float] | None:
    """The corrected rate and a 95% interval that carries both samples' uncertainty.

    ``n_yes`` of ``n`` ratings are YES; ``matrix`` (``{judge: {reference: count}}``) is the
    calibration sample. The point estimate is :func:`rogan_gladen` of the observed rate with
    the calibration's sensitivity and specificity. The interval is a seeded Monte Carlo over
    the three binomial proportions (observed rate, sensitivity, specificity), each drawn from
    its Beta(successes + 1, failures + 1) posterior, the correction applied to every draw (draws
    with J <= 0 count at the nearer bound); so a small calibration sample widens it. None when
    a proportion has no data or the point estimate is undefined.
    """
    tp, fn = matrix["YES"]["YES"], matrix["NO"]["YES"]
    tn, fp = matrix["NO"]["NO"], matrix["YES"]["NO"]
    if n == 0 or tp + fn == 0 or tn + fp == 0:
        return None
    point = rogan_gladen(n_yes / n, tp / (tp + fn), tn / (tn + fp))
    if point is None:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(draws):
        p = rng.betavariate(n_yes + 1, n - n_yes + 1)
        se = rng.betavariate(tp + 1, fn + 1)
        sp = rng.betavariate(tn + 1, fp + 1)
        v = rogan_gladen(p, se, sp)
        values.append(v if v is not None else (1.0 if p > 0.5 else 0.0))
    lo, hi = percentile(values, 0.025), percentile(values, 0.975)
    assert lo is not None and hi is not None
    return point, lo, hi
