"""The vectorised bootstrap keeps the significance decisions of the former pure-Python one.

Expected decisions and the former intervals were computed with the ``random.Random`` bootstrap
that compare and gate used before; the cases are realistic reward changes (graded and binary
rewards, clear and no change, small drops near the edge of significance).
"""

from __future__ import annotations

import random

import pytest
from report_builders import StoreBuilder

from atif.report import compare, gate
from atif.report.stats import bootstrap_mean_ci


def _cases() -> dict[str, tuple[list[float], list[float]]]:
    r = random.Random(7)
    out: dict[str, tuple[list[float], list[float]]] = {}
    out["tiny-regression"] = ([1.0] * 20, [0.5 if i < 12 else 1.0 for i in range(20)])
    b = [round(r.random(), 2) for _ in range(200)]
    out["200-no-change"] = (b, [round(min(1, max(0, x + r.gauss(0, 0.1))), 2) for x in b])
    b = [round(r.random(), 2) for _ in range(200)]
    out["200-small-drop"] = (b, [round(min(1, max(0, x - 0.03 + r.gauss(0, 0.1))), 2) for x in b])
    b = [float(r.random() < 0.7) for _ in range(3000)]
    out["3000-binary-drop"] = (b, [float(r.random() < 0.67) for _ in b])
    b = [float(r.random() < 0.7) for _ in range(3000)]
    out["3000-binary-same"] = (b, [float(r.random() < 0.7) for _ in b])
    b = [round(r.random(), 3) for _ in range(3000)]
    out["3000-graded-tiny-drop"] = (b, [round(min(1, max(0, x - 0.01 + r.gauss(0, 0.2))), 3) for x in b])
    return out


# case -> (significant, former 95% interval of the mean reward change)
FORMER = {
    "tiny-regression": (True, (-0.4, -0.2)),
    "200-no-change": (False, (-0.00760125, 0.0185025)),
    "200-small-drop": (True, (-0.03425125, -0.00944875)),
    "3000-binary-drop": (True, (-0.0589, -0.01066666667)),
    "3000-binary-same": (False, (-0.014, 0.03333333333)),
    "3000-graded-tiny-drop": (True, (-0.01396933333, -0.001666966667)),
}


@pytest.mark.parametrize("case", sorted(FORMER))
def test_reward_decisions_match_the_former_bootstrap(case: str) -> None:
    base, cand = _cases()[case]
    boot = bootstrap_mean_ci([c - b for b, c in zip(base, cand, strict=True)], seed=0)
    significant, (lo, hi) = FORMER[case]
    assert (boot.ci_low > 0 or boot.ci_high < 0) is significant
    assert boot.resamples == 2000 and boot.method == "bootstrap"
    # Same interval up to resampling noise (a few percent of its width).
    width = hi - lo
    assert boot.ci_low == pytest.approx(lo, abs=0.1 * width) and boot.ci_high == pytest.approx(hi, abs=0.1 * width)


@pytest.mark.parametrize("case", ["tiny-regression", "200-no-change", "200-small-drop"])
def test_compare_and_gate_keep_their_decisions(builder: StoreBuilder, case: str) -> None:
    base, cand = _cases()[case]
    for i, (x, y) in enumerate(zip(base, cand, strict=True)):
        builder.trial("base", f"t{i}", reward=x, ratings={"ok": "YES" if x >= 0.5 else "NO"})
        builder.trial("cand", f"t{i}", reward=y, ratings={"ok": "YES" if y >= 0.5 else "NO"})
    store = builder.store()
    significant, _ = FORMER[case]
    assert compare(store, "base", "cand")["metrics"]["reward"]["significant"] is significant
    g = gate(store, "cand", baseline="base", max_regression=0.0)
    reward = [c for c in g.conditions if "mean reward" in c.name]
    assert len(reward) == 1 and reward[0].passed is not significant
