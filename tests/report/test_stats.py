"""Statistics against textbook values and their edge cases."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from atif.report.stats import (
    MIN_RESAMPLES,
    Z95,
    bootstrap_counted_ci,
    bootstrap_mean_ci,
    cohen_kappa,
    mcnemar_exact,
    mean,
    percentile,
    wilson_interval,
)


def test_wilson_matches_newcombe_table() -> None:
    # Newcombe (1998), Table I: 81/263 -> 0.2553..0.3662; 15/148 -> 0.0624..0.1605
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    lo, hi = wilson_interval(15, 148)
    assert (round(lo, 4), round(hi, 4)) == (0.0624, 0.1605)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.0 < hi < 0.35
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.65 < lo < 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_wilson_agrees_with_sql_view_formula(builder) -> None:
    for i in range(7):
        builder.trial("e", f"t{i}", ratings={"c": "YES" if i < 5 else "NO"})
    lo, hi = builder.con.execute("SELECT ci_low, ci_high FROM criterion_metrics WHERE criterion = 'c'").fetchone()
    mine = wilson_interval(5, 7)
    assert mine == pytest.approx((lo, hi), abs=1e-12)


def test_mcnemar_exact_values() -> None:
    # b=1, c=9: 2 * P(X <= 1 | n=10, p=.5) = 2 * 11 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    # large n stays finite and tiny
    p = mcnemar_exact(1000, 3000)
    assert 0.0 <= p < 1e-100


def test_mcnemar_is_symmetric_and_monotone() -> None:
    ps = [mcnemar_exact(k, 20 - k) for k in range(11)]
    assert ps == sorted(ps)
    assert all(mcnemar_exact(a, b) == mcnemar_exact(b, a) for a in range(6) for b in range(6))


def test_cohen_kappa_textbook() -> None:
    # 50 items: both YES 20, A YES/B NO 5, A NO/B YES 10, both NO 15 -> po .7, pe .5, kappa .4
    m = {"YES": {"YES": 20, "NO": 5}, "NO": {"YES": 10, "NO": 15}}
    assert cohen_kappa(m) == pytest.approx(0.4)


def test_cohen_kappa_edges() -> None:
    assert cohen_kappa({}) is None
    assert cohen_kappa({"YES": {"YES": 5}}) is None  # chance agreement 1: undefined
    assert cohen_kappa({"YES": {"YES": 5, "NO": 0}, "NO": {"YES": 0, "NO": 5}}) == pytest.approx(1.0)
    assert cohen_kappa({"YES": {"YES": 0, "NO": 5}, "NO": {"YES": 5, "NO": 0}}) == pytest.approx(-1.0)


def test_percentile_matches_linear_interpolation() -> None:
    xs = [1, 2, 3, 4]
    assert percentile(xs, 0.5) == 2.5
    assert percentile(xs, 0.0) == 1
    assert percentile(xs, 1.0) == 4
    assert percentile(xs, 0.95) == pytest.approx(3.85)
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        percentile(xs, 1.5)


def test_percentile_agrees_with_duckdb() -> None:
    import duckdb

    rng = random.Random(7)
    xs = [rng.random() * 100 for _ in range(101)]
    con = duckdb.connect()
    for q in (0.05, 0.5, 0.95):
        (sql,) = con.execute("SELECT quantile_cont(x, ?) FROM (SELECT unnest(?) AS x)", [q, xs]).fetchone()
        assert percentile(xs, q) == pytest.approx(sql)


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    rng = random.Random(1)
    diffs = [rng.gauss(0.3, 1.0) for _ in range(400)]
    a = bootstrap_mean_ci(diffs, seed=42)
    b = bootstrap_mean_ci(diffs, seed=42)
    c = bootstrap_mean_ci(diffs, seed=43)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.ci_low < a.mean < a.ci_high
    # the interval is about +-1.96 standard errors wide
    se = 1.0 / math.sqrt(400)
    assert a.ci_high - a.ci_low == pytest.approx(2 * 1.96 * se, rel=0.25)
    assert a.mean == pytest.approx(mean(diffs))


def test_bootstrap_small_and_large_inputs() -> None:
    one = bootstrap_mean_ci([0.5])
    assert one.n == 1 and one.mean == 0.5 and one.ci_low is None and one.resamples == 0
    assert bootstrap_mean_ci([]).mean is None
    # Two distinct values: a resample is one binomial draw, so all 2,000 resamples fit the budget.
    big = bootstrap_mean_ci([0.0, 1.0] * 50_000, seed=0)
    assert big.resamples == 2000 and big.method == "bootstrap"
    se = 0.5 / math.sqrt(100_000)
    assert big.ci_low == pytest.approx(0.5 - 1.96 * se, abs=3e-4) and big.ci_high == pytest.approx(0.5 + 1.96 * se, abs=3e-4)


def test_bootstrap_budget_is_never_exceeded() -> None:
    rng = random.Random(3)
    diffs = [rng.gauss(0.0, 1.0) for _ in range(5000)]  # all distinct: a resample costs 5,000 indices
    for budget, expected in ((5000 * 2000, 2000), (5000 * 700, 700), (5000 * 200, 200)):
        assert bootstrap_mean_ci(diffs, budget=budget).resamples == expected
    # Fewer than MIN_RESAMPLES affordable: no resampling at all, the normal interval, said so.
    few = bootstrap_mean_ci(diffs, budget=5000 * (MIN_RESAMPLES - 1))
    assert (few.resamples, few.method) == (0, "normal")
    sd = statistics.stdev(diffs)
    assert few.ci_low == pytest.approx(few.mean - Z95 * sd / math.sqrt(5000), rel=1e-12)
    assert few.ci_high == pytest.approx(few.mean + Z95 * sd / math.sqrt(5000), rel=1e-12)
    # ... which agrees with the bootstrap it stands in for.
    full = bootstrap_mean_ci(diffs)
    assert few.ci_low == pytest.approx(full.ci_low, abs=0.01) and few.ci_high == pytest.approx(full.ci_high, abs=0.01)


def test_bootstrap_does_not_depend_on_pair_order() -> None:
    rng = random.Random(5)
    diffs = [round(rng.random() - rng.random(), 2) for _ in range(300)]
    shuffled = diffs[:]
    rng.shuffle(shuffled)
    a, b = bootstrap_mean_ci(diffs, seed=9), bootstrap_mean_ci(shuffled, seed=9)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


def test_bootstrap_pinned_for_a_fixed_seed() -> None:
    """The figures compare and gate print must not move between runs or releases unnoticed."""
    rng = random.Random(11)
    discrete = [round(rng.random(), 2) - round(rng.random(), 2) for _ in range(200)]
    continuous = [rng.gauss(-0.05, 0.3) for _ in range(200)]
    binary = [float(rng.random() < 0.6) - float(rng.random() < 0.7) for _ in range(1000)]
    got = [(r.resamples, f"{r.ci_low:.10g}", f"{r.ci_high:.10g}")
           for r in (bootstrap_mean_ci(d, seed=0) for d in (discrete, continuous, binary))]
    assert got == PINNED


# numpy.random.default_rng(0), numpy 2; a numpy release that changed its streams would show here.
PINNED = [(2000, "-0.0663525", "0.03645"), (2000, "-0.1032063868", "-0.02203308351"),
          (2000, "-0.130025", "-0.046975")]


@pytest.mark.parametrize(("n", "distinct", "budget"), [(5000, 40, 24_000_000), (3000, 3000, 24_000_000),
                                                       (3000, 2900, 100_000), (1, 1, 24_000_000)])
def test_counted_bootstrap_is_the_bootstrap_of_every_difference(n: int, distinct: int, budget: int) -> None:
    import numpy as np

    rng = np.random.default_rng(11)
    pool = np.round(rng.normal(0.1, 0.3, size=distinct), 3) + 0.1 - 0.1  # decimals with noise in the last bits
    diffs = rng.choice(pool, size=n)
    values, counts = np.unique(diffs, return_counts=True)
    order = rng.permutation(values.size)  # any order, and a value split over two entries
    vs = np.concatenate([values[order], values[:1]])
    cs = np.concatenate([counts[order], [0]])
    whole = bootstrap_mean_ci(diffs.tolist(), seed=5, budget=budget)
    counted = bootstrap_counted_ci(vs, cs, seed=5, budget=budget)
    assert counted == whole
    assert whole.method == ("none" if n == 1 else "normal" if budget < 1_000_000 else "bootstrap")
    assert whole.mean == math.fsum(diffs.tolist()) / n
