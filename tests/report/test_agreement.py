"""Vote agreement of sampled and panel verdicts in report and gate."""

from __future__ import annotations

import json

import pytest
from report_builders import StoreBuilder

from atif.errors import ReportError
from atif.report import build_report, gate, render_report_md


def _voted(verdict: str, agreement: float) -> dict[str, object]:
    votes = [{"model": "m", "sample": i, "verdict": verdict} for i in range(3)]
    return {"verdict": verdict, "agreement": agreement, "votes": json.dumps(votes)}


@pytest.fixture
def voted(builder: StoreBuilder) -> StoreBuilder:
    builder.trial("exp", "t1", ratings={"ok": _voted("YES", 1.0), "plain": "YES"})
    builder.trial("exp", "t2", ratings={"ok": _voted("YES", 2 / 3), "plain": "NO"})
    builder.trial("exp", "t3", ratings={"ok": {"verdict": "UNSCORED", "agreement": 0.5, "error": "tie: 1 YES, 1 NO"},
                                        "plain": "YES"})
    return builder


def test_report_shows_agreement_per_criterion_and_lists_low_ones(voted: StoreBuilder) -> None:
    rep = build_report(voted.store(), "exp")
    ok = rep["summary"]["criteria"]["ok"]["agreement"]
    assert ok == {"n_voted": 3, "mean": pytest.approx((1 + 2 / 3 + 0.5) / 3), "n_low": 2}
    assert rep["summary"]["criteria"]["plain"]["agreement"] == {"n_voted": 0, "mean": None, "n_low": 0}
    assert [(r["task_name"], r["agreement"]) for r in rep["low_agreement"]] == [("t3", 0.5), ("t2", pytest.approx(2 / 3))]
    md = render_report_md(rep)
    assert "vote agreement" in md and "72.2% (2 low)" in md
    assert "### Low-agreement ratings (2 shown)" in md


def test_no_votes_no_agreement_column(builder: StoreBuilder) -> None:
    builder.trial("exp", "t1", ratings={"plain": "YES"})
    md = render_report_md(build_report(builder.store(), "exp"))
    assert "vote agreement" not in md and "Low-agreement" not in md


def test_gate_min_agreement(voted: StoreBuilder) -> None:
    store = voted.store()
    ok = gate(store, "exp", min_agreement=0.7)
    assert ok.passed and [c.name for c in ok.conditions] == ["vote agreement of ok >= 0.7"]
    low = gate(store, "exp", min_agreement=0.8)
    assert not low.passed and "lowest 0.5" in low.conditions[0].detail
    with pytest.raises(ReportError, match="outside"):
        gate(store, "exp", min_agreement=1.5)


def test_gate_min_agreement_without_votes_fails(builder: StoreBuilder) -> None:
    builder.trial("exp", "t1", ratings={"plain": "YES"})
    result = gate(builder.store(), "exp", min_agreement=0.7)
    assert not result.passed and "no rating" in result.conditions[0].detail
