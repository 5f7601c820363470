"""build_report: figures computed in SQL match hand-computed ones; cohorts; stable JSON."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from report_builders import StoreBuilder, simple_trajectory

from atif.errors import NotFoundError, ReportError
from atif.report import build_report, render_report_md
from atif.report.stats import percentile, wilson_interval
from atif.store import Store


@pytest.fixture
def populated(builder: StoreBuilder) -> StoreBuilder:
    builder.task("alpha", ["easy", "py"])
    builder.task("beta", ["hard"])
    builder.task("gamma", [])
    rewards = [1.0, 0.8, 0.0, 0.5, 0.25, 1.0]
    for i, r in enumerate(rewards):
        task = ["alpha", "beta", "gamma"][i % 3]
        builder.trial(
            "exp", task, epoch=i // 3 + 1, reward=r, rewards={"reward": r, "tests_passed": i},
            cost=0.01 * (i + 1), duration=10.0 * (i + 1), steps=i + 2, tokens=(100 * (i + 1), 10, 5),
            model="m-a" if i < 4 else "m-b",
            error="TimeoutError: agent took too long" if i == 2 else None,
            ratings={
                "correct": "YES" if r >= 0.8 else "NO",
                "safe": ({"verdict": "UNSCORED", "error": "judge reply had no verdict"} if i == 5 else
                         {"verdict": "YES", "judge_model": "gpt-j", "cost_usd": 0.002, "prompt_tokens": 300,
                          "completion_tokens": 20, "cached": i == 4}),
            } if i != 3 else {"correct": {"verdict": "YES", "source": "human"}},
            trajectory=simple_trajectory(task) if i == 0 else None,
        )
    builder.trial("other", "alpha", reward=0.1)
    return builder


def test_overall_figures(populated: StoreBuilder) -> None:
    rep = build_report(populated.store(), "exp")
    s = rep["summary"]
    assert rep["schema_version"] == "1" and rep["kind"] == "report" and rep["experiment"] == "exp"
    assert rep["criteria"] == ["correct", "safe"]
    assert s["n_trials"] == 6 and s["n_errored"] == 1
    assert s["error_rate"] == pytest.approx(1 / 6)
    assert s["errors"] == [{"cause": "TimeoutError", "count": 1}]
    rewards = [1.0, 0.8, 0.0, 0.5, 0.25, 1.0]
    assert s["reward"]["mean"] == pytest.approx(sum(rewards) / 6)
    assert s["reward"]["p50"] == pytest.approx(percentile(rewards, 0.5))
    assert s["reward"]["p95"] == pytest.approx(percentile(rewards, 0.95))
    assert s["cost_usd"]["total"] == pytest.approx(0.21)
    assert s["duration_seconds"]["p50"] == pytest.approx(35.0)
    assert s["input_tokens"]["total"] == 2100
    assert s["steps"]["mean"] == pytest.approx(4.5)
    assert s["rewards"]["tests_passed"]["mean"] == pytest.approx(2.5)
    assert s["rewards"]["reward"]["n"] == 6


def test_criteria_pass_rates_unscored_and_missing(populated: StoreBuilder) -> None:
    s = build_report(populated.store(), "exp")["summary"]
    correct = s["criteria"]["correct"]
    # trial 3 has reward .5 but a human YES
    assert (correct["n_yes"], correct["n_no"], correct["n_unscored"], correct["n_missing"]) == (4, 2, 0, 0)
    lo, hi = wilson_interval(4, 6)
    assert correct["pass_rate"] == pytest.approx(4 / 6)
    assert (correct["ci_low"], correct["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    safe = s["criteria"]["safe"]
    assert (safe["n_yes"], safe["n_no"], safe["n_unscored"], safe["n_missing"]) == (4, 0, 1, 1)
    assert safe["unscored_reasons"] == [{"count": 1, "reason": "judge reply had no verdict"}]
    assert s["macro_pass_rate"] == pytest.approx((4 / 6 + 1.0) / 2)
    assert (s["n_unscored"], s["n_missing"]) == (1, 1)


def test_histograms(populated: StoreBuilder) -> None:
    h = build_report(populated.store(), "exp")["summary"]["histograms"]
    assert len(h["reward"]) == 10 and sum(b["count"] for b in h["reward"]) == 6
    assert h["reward"][9]["count"] == 2 and h["reward"][0]["count"] == 1 and h["reward"][8]["count"] == 1
    passed = {b["passed"]: b["count"] for b in h["criteria_passed"]}
    # trials: 0 (Y,Y) 1 (Y,Y) 2 (N,Y) 3 (Y,-) 4 (N,Y) 5 (Y,U)
    assert passed == {0: 0, 1: 4, 2: 2}


def test_judge_usage_is_apart_from_agent_cost(populated: StoreBuilder) -> None:
    j = build_report(populated.store(), "exp")["summary"]["judge"]
    # 5 judge ratings on "correct" (one is human) + 5 "safe" judge ratings; one cached
    assert j["calls"] + j["cache_hits"] == 10 and j["cache_hits"] == 1
    assert j["cost_usd"] == pytest.approx(0.002 * 3)  # cached call costs nothing again
    assert j["models"]["gpt-j"]["prompt_tokens"] == 900
    assert j["unscored"] == 1


def test_notable_trials(populated: StoreBuilder) -> None:
    n = build_report(populated.store(), "exp")["notable"]
    assert [t["duration_seconds"] for t in n["slowest"]] == [60.0, 50.0, 40.0, 30.0, 20.0]
    assert n["most_expensive"][0]["cost_usd"] == pytest.approx(0.06)
    assert [t["error"] for t in n["failed"]] == ["TimeoutError: agent took too long"]


def test_cohorts_by_tag_model_agent(populated: StoreBuilder) -> None:
    rep = build_report(populated.store(), "exp", by="tag")
    values = [c["value"] for c in rep["cohorts"]]
    assert values == ["(untagged)", "easy", "hard", "py"]
    by = {c["value"]: c["summary"] for c in rep["cohorts"]}
    assert by["easy"]["n_trials"] == 2 and by["py"]["n_trials"] == 2 and by["hard"]["n_trials"] == 2
    assert by["(untagged)"]["n_errored"] == 1
    rep = build_report(populated.store(), "exp", by="model")
    # the trajectory's model wins over the trial metadata for trial 0
    assert {c["value"]: c["summary"]["n_trials"] for c in rep["cohorts"]} == {"m-1": 1, "m-a": 3, "m-b": 2}
    rep = build_report(populated.store(), "exp", by="agent")
    assert sum(c["summary"]["n_trials"] for c in rep["cohorts"]) == 6


def test_errors(populated: StoreBuilder) -> None:
    with pytest.raises(NotFoundError, match="no trials for experiment 'nope'; known: exp, other"):
        build_report(populated.store(), "nope")
    with pytest.raises(ReportError, match="unknown cohort key"):
        build_report(populated.store(), "exp", by="colour")


def test_json_is_stable_and_sorted(populated: StoreBuilder) -> None:
    a = orjson.dumps(build_report(populated.store(), "exp", by="tag"))
    b = orjson.dumps(build_report(populated.store(), "exp", by="tag"))
    assert a == b
    data = orjson.loads(a)
    assert list(data) == sorted(data)
    assert list(data["summary"]) == sorted(data["summary"])


def test_reads_through_a_store(populated: StoreBuilder, tmp_path: Path) -> None:
    populated.close()
    with Store.open(tmp_path / "atif.duckdb", read_only=True) as store:
        assert build_report(store, "exp")["summary"]["n_trials"] == 6
        assert build_report(store, "other")["summary"]["n_trials"] == 1


def test_markdown_is_safe_for_tables(builder: StoreBuilder) -> None:
    builder.trial("e", "a|b<script>", reward=0.5, error="Bad | thing\n<img src=x onerror=alert(1)>",
                  ratings={"c": "NO"})
    md = render_report_md(build_report(builder.store(), "e"))
    assert "<img" not in md and "<script>" not in md
    assert "a\\|b&lt;script&gt;" in md
    assert "| c | 0.0%" in md
