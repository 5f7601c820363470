"""compare (pairing, McNemar, bootstrap, task lists) and gate (thresholds, regressions, exit codes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from report_builders import StoreBuilder

from atif.cli import cli
from atif.errors import NotFoundError, ReportError
from atif.report import compare, gate, parse_min_pass, render_compare_md, render_gate_text
from atif.report.stats import mcnemar_exact


@pytest.fixture
def runs(builder: StoreBuilder) -> StoreBuilder:
    """base: 20 tasks all correct; cand: 12 regress on `correct`, 1 improves on `style`; both epochs 1."""
    for i in range(20):
        builder.trial("base", f"t{i:02d}", reward=1.0, cost=0.10, duration=10.0,
                      ratings={"correct": "YES", "style": "NO" if i == 0 else "YES"})
        lost = i < 12
        builder.trial("cand", f"t{i:02d}", reward=0.5 if lost else 1.0, cost=0.12, duration=9.0,
                      ratings={"correct": "NO" if lost else "YES", "style": "YES"})
    builder.trial("base", "only-base", reward=1.0)
    builder.trial("cand", "only-cand", reward=1.0)
    builder.trial("cand", "t19", epoch=2, reward=1.0)  # unpaired: base has no epoch 2
    return builder


def test_compare_pairs_and_tests(runs: StoreBuilder) -> None:
    r = compare(runs.store(), "base", "cand")
    assert r["n_pairs"] == 20 and r["pairing"] == "task_name+epoch"
    c = r["criteria"]["correct"]
    assert (c["n_pairs"], c["regressed"], c["improved"], c["both_yes"]) == (20, 12, 0, 8)
    assert c["baseline_pass_rate"] == 1.0 and c["candidate_pass_rate"] == pytest.approx(0.4)
    assert c["delta"] == pytest.approx(-0.6)
    assert c["p_value"] == pytest.approx(mcnemar_exact(12, 0))
    assert c["significant"] is True
    s = r["criteria"]["style"]
    assert (s["regressed"], s["improved"], s["significant"]) == (0, 1, False)
    m = r["metrics"]["reward"]
    assert m["n_pairs"] == 20 and m["delta_mean"] == pytest.approx(-0.3)
    assert m["ci_low"] <= -0.3 <= m["ci_high"] < 0 and m["significant"]
    assert r["metrics"]["cost_usd"]["delta_mean"] == pytest.approx(0.02)
    assert r["metrics"]["duration_seconds"]["delta_mean"] == pytest.approx(-1.0)
    assert [t["task_name"] for t in r["tasks"]["regressed"]] == [f"t{i:02d}" for i in range(12)]
    assert r["tasks"]["regressed"][0]["lost"] == ["correct"] and r["tasks"]["regressed"][0]["gained"] == ["style"]
    assert r["tasks"]["improved"] == []
    # t00 lost correct but gained style with a reward drop: net 0, reward decides -> regressed
    assert {(u["task_name"], u["epoch"]) for u in r["unpaired"]["candidate_only"]} == {("only-cand", 1), ("t19", 2)}
    assert [u["task_name"] for u in r["unpaired"]["baseline_only"]] == ["only-base"]


def test_compare_is_reproducible_and_seeded(runs: StoreBuilder) -> None:
    assert compare(runs.store(), "base", "cand", seed=3) == compare(runs.store(), "base", "cand", seed=3)
    assert compare(runs.store(), "base", "cand", seed=3)["seed"] == 3


def test_compare_leaves_out_unscored_and_counts_it(builder: StoreBuilder) -> None:
    builder.trial("a", "t1", ratings={"c": "YES"})
    builder.trial("b", "t1", ratings={"c": "UNSCORED"})
    builder.trial("a", "t2", ratings={"c": "YES"})
    builder.trial("b", "t2")
    builder.trial("a", "t3", ratings={"c": "NO"})
    builder.trial("b", "t3", ratings={"c": "YES"})
    c = compare(builder.store(), "a", "b")["criteria"]["c"]
    assert (c["n_pairs"], c["excluded_unscored"], c["excluded_missing"], c["improved"]) == (1, 1, 1, 1)


def test_compare_markdown(runs: StoreBuilder) -> None:
    md = render_compare_md(compare(runs.store(), "base", "cand"))
    assert "## atif compare: base → cand" in md
    assert "| correct | 20 | 100.0% | 40.0% | -60.0 pp **↓** | 12 | 0 |" in md
    assert "Regressed (12)" in md and "Unpaired, candidate only (2)" in md


def test_compare_unknown_experiment(runs: StoreBuilder) -> None:
    with pytest.raises(NotFoundError):
        compare(runs.store(), "base", "nope")


def test_parse_min_pass() -> None:
    assert parse_min_pass("correct=0.8") == ("correct", 0.8)
    assert parse_min_pass("a=b=1") == ("a=b", 1.0)
    assert parse_min_pass("*=0.5") == ("*", 0.5)
    for bad in ("correct", "=0.8", "correct=", "correct=x", "correct=1.2", "correct=-0.1"):
        with pytest.raises(ReportError):
            parse_min_pass(bad)


def test_gate_thresholds_and_unscored(builder: StoreBuilder) -> None:
    for i in range(10):
        v = "YES" if i < 8 else ("UNSCORED" if i == 8 else "NO")
        builder.trial("e", f"t{i}", reward=1.0 if i < 7 else None, ratings={"c": v, "d": "YES"})
    res = gate(builder.store(), "e", min_pass={"c": 0.8})
    assert res.passed and res.conditions[0].observed == pytest.approx(0.8)
    res = gate(builder.store(), "e", min_pass={"c": 0.85})
    assert not res.passed and "1 unscored" in res.conditions[0].detail
    res = gate(builder.store(), "e", min_pass={"c": 0.85}, ignore_unscored=True)
    assert res.passed and res.conditions[0].observed == pytest.approx(8 / 9)
    res = gate(builder.store(), "e", min_pass={"*": 0.9})
    assert [c.passed for c in res.conditions] == [False, True]
    # rewards: 7 trials of 10 have reward 1; missing ones count as 0 unless ignored
    assert not gate(builder.store(), "e", min_reward=0.8).passed
    assert gate(builder.store(), "e", min_reward=0.8, ignore_unscored=True).passed


def test_gate_rejects_malformed_gates(builder: StoreBuilder) -> None:
    builder.trial("e", "t", ratings={"c": "YES"})
    with pytest.raises(ReportError, match="unknown criterion 'zz'"):
        gate(builder.store(), "e", min_pass={"zz": 0.5})
    with pytest.raises(ReportError, match="nothing to check"):
        gate(builder.store(), "e")
    with pytest.raises(ReportError):
        gate(builder.store(), "e", min_pass={"c": 0.5}, alpha=0)
    with pytest.raises(NotFoundError):
        gate(builder.store(), "e", baseline="missing")


def test_gate_regression_needs_size_and_significance(runs: StoreBuilder) -> None:
    res = gate(runs.store(), "cand", baseline="base", max_regression=0.05)
    by_name = {c.name.split(" vs ")[0]: c for c in res.conditions}
    assert not by_name["no regression of correct"].passed
    assert by_name["no regression of style"].passed
    assert not by_name["no regression of mean reward"].passed
    # a drop larger than tolerated but on too few pairs to be significant passes
    res = gate(runs.store(), "cand", baseline="base", max_regression=0.7)
    assert res.passed


def test_gate_regression_small_sample_not_significant(builder: StoreBuilder) -> None:
    for i in range(3):
        builder.trial("b", f"t{i}", ratings={"c": "YES"})
        builder.trial("c", f"t{i}", ratings={"c": "NO" if i < 2 else "YES"})
    res = gate(builder.store(), "c", baseline="b", max_regression=0.05)
    cond = res.conditions[0]
    assert cond.observed == pytest.approx(2 / 3) and cond.passed  # p = 0.5
    assert "McNemar p=0.5" in cond.detail


def test_gate_text(runs: StoreBuilder) -> None:
    text = render_gate_text(gate(runs.store(), "cand", min_pass={"correct": 0.5}))
    assert text.startswith("FAIL  pass rate of correct >= 0.5: 0.3636")
    assert text.rstrip().endswith("gate FAILED: 0 of 1 conditions hold")


def _cli(db: Path, *args: str):
    return CliRunner().invoke(cli, [*args, "--db", str(db)])


def test_gate_cli_exit_codes(runs: StoreBuilder, tmp_path: Path) -> None:
    runs.close()
    db = tmp_path / "atif.duckdb"
    ok = _cli(db, "gate", "-e", "cand", "--min-pass", "style=0.9")
    assert ok.exit_code == 0, ok.output
    assert "PASS  pass rate of style >= 0.9" in ok.output
    bad = _cli(db, "gate", "-e", "cand", "--min-pass", "correct=0.8", "--min-pass", "style=0.9",
               "--baseline", "base")
    assert bad.exit_code == 1
    assert sum(line.startswith("FAIL ") for line in bad.output.splitlines()) == 3
    assert "gate FAILED" in bad.output
    for args in (["--min-pass", "correct"], ["--min-pass", "nope=0.5"], ["--min-pass", "correct=2"], [],
                 ["--min-pass", "correct=0.5", "--max-regression", "0.1"]):
        r = _cli(db, "gate", "-e", "cand", *args)
        assert r.exit_code == 2, (args, r.output)
    missing = _cli(db, "gate", "-e", "nope", "--min-pass", "correct=0.5")
    assert missing.exit_code == 1 and isinstance(missing.exception, NotFoundError)
    js = _cli(db, "gate", "-e", "cand", "--min-reward", "0.5", "--format", "json")
    assert js.exit_code == 0 and '"passed": true' in js.output


def test_compare_cli(runs: StoreBuilder, tmp_path: Path) -> None:
    runs.close()
    db = tmp_path / "atif.duckdb"
    r = _cli(db, "compare", "base", "cand", "--format", "json", "-o", str(tmp_path / "c.json"))
    assert r.exit_code == 0, r.output
    import orjson

    data = orjson.loads((tmp_path / "c.json").read_bytes())
    assert data["schema_version"] == "1" and data["kind"] == "compare"
    md = _cli(db, "compare", "base", "cand")
    assert md.exit_code == 0 and "McNemar" in md.output
