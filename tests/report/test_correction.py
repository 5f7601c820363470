"""Calibration metrics with intervals, Rogan–Gladen corrected pass rates in report and gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_builders import StoreBuilder

from atif.cli import cli
from atif.errors import InputError, ReportError
from atif.report import build_report, calibrate, gate, render_calibration_md, render_report_md
from atif.report.correction import load_calibration
from atif.report.stats import binary_metrics, kappa_interval, rogan_gladen, rogan_gladen_interval

# judge, human per task for criterion "ok": 20 YY, 5 YN, 10 NY, 15 NN -> kappa .4, Se 2/3, Sp .75
_PLAN = [("YES", "YES")] * 20 + [("YES", "NO")] * 5 + [("NO", "YES")] * 10 + [("NO", "NO")] * 15
_MATRIX = {"YES": {"YES": 20, "NO": 5}, "NO": {"YES": 10, "NO": 15}}


@pytest.fixture
def labelled(builder: StoreBuilder) -> StoreBuilder:
    for i, (j, h) in enumerate(_PLAN):
        builder.trial("judged", f"t{i:02d}", ratings={"ok": j, "tidy": "YES"})
        builder.trial("labels", f"t{i:02d}", ratings={"ok": {"verdict": h, "source": "human"}})
    return builder


def test_rogan_gladen_inverts_the_judge_error() -> None:
    assert rogan_gladen(0.5, 0.8, 0.9) == pytest.approx(0.4 / 0.7)
    # a true rate of .3 seen through Se .9 / Sp .8 is observed as .3*.9 + .7*.2 = .41
    assert rogan_gladen(0.41, 0.9, 0.8) == pytest.approx(0.3)
    assert rogan_gladen(0.05, 0.9, 0.8) == 0.0  # clipped
    assert rogan_gladen(0.5, 0.5, 0.5) is None  # a coin-flip judge tells nothing


def test_corrected_interval_holds_the_point_and_widens_with_a_small_calibration() -> None:
    small = rogan_gladen_interval(250, 500, _MATRIX)
    big = rogan_gladen_interval(250, 500, {k: {r: v * 20 for r, v in row.items()} for k, row in _MATRIX.items()})
    assert small is not None and big is not None
    assert small[0] == pytest.approx(big[0]) == pytest.approx((0.5 + 0.75 - 1) / (2 / 3 + 0.75 - 1))
    assert small[1] <= small[0] <= small[2] and big[1] <= big[0] <= big[2]
    assert small[2] - small[1] > 2 * (big[2] - big[1])
    assert rogan_gladen_interval(250, 500, _MATRIX) == small  # seeded: reproducible


def test_kappa_interval_uses_the_large_sample_error() -> None:
    lo, hi = kappa_interval(_MATRIX)  # type: ignore[misc]
    se = (0.7 * 0.3 / (50 * 0.25)) ** 0.5
    assert (lo, hi) == (pytest.approx(0.4 - 1.959963984540054 * se), pytest.approx(0.4 + 1.959963984540054 * se))


def test_binary_metrics_with_intervals() -> None:
    m = binary_metrics(_MATRIX)
    assert m["tpr"]["value"] == m["recall"]["value"] == pytest.approx(20 / 30)
    assert m["tnr"]["value"] == pytest.approx(15 / 20)
    assert m["precision"]["value"] == pytest.approx(20 / 25)
    assert m["f1"]["value"] == pytest.approx(40 / 55)
    assert m["balanced_accuracy"]["value"] == pytest.approx((20 / 30 + 15 / 20) / 2)
    assert m["kappa"]["value"] == pytest.approx(0.4)
    for name, v in m.items():
        assert v["ci_low"] <= v["value"] <= v["ci_high"], name  # type: ignore[operator]
    empty = binary_metrics({"YES": {"YES": 5, "NO": 0}, "NO": {"YES": 0, "NO": 0}})
    assert empty["tnr"]["value"] is None and empty["balanced_accuracy"]["value"] is None
    assert empty["f1"]["ci_high"] == 1.0  # the interval holds its boundary point


def test_calibrate_reports_the_metrics(labelled: StoreBuilder) -> None:
    r = calibrate(labelled.store(), "judged", against="human", reference="labels")
    metrics = r["criteria"]["ok"]["metrics"]
    assert set(metrics) == {"tpr", "tnr", "precision", "recall", "f1", "balanced_accuracy", "kappa"}
    md = render_calibration_md(r)
    assert "balanced accuracy" in md and "0.667 [" in md


def test_report_shows_the_corrected_rate_beside_the_raw_one(labelled: StoreBuilder) -> None:
    store = labelled.store()
    cal = calibrate(store, "judged", against="human", reference="labels")
    rep = build_report(store, "judged", calibration=cal)
    ok = rep["summary"]["criteria"]["ok"]
    assert ok["pass_rate"] == pytest.approx(0.5)
    assert ok["corrected"]["pass_rate"] == pytest.approx((0.5 + 0.75 - 1) / (2 / 3 + 0.75 - 1), abs=1e-9)
    assert ok["corrected"]["ci_low"] < ok["corrected"]["pass_rate"] < ok["corrected"]["ci_high"]
    assert ok["corrected"]["n_calibration"] == 50
    assert rep["summary"]["criteria"]["tidy"]["corrected"] == {"pass_rate": None,
                                                               "reason": "no calibration data for this criterion"}
    md = render_report_md(rep)
    assert "corrected (95% CI)" in md and "60.0%" in md and "50 calibration pairs" in md
    assert "corrected" not in render_report_md(build_report(store, "judged"))


def test_a_one_sided_calibration_sample_gives_no_correction(builder: StoreBuilder) -> None:
    for i in range(5):
        builder.trial("judged", f"t{i}", ratings={"ok": "YES"})
        builder.trial("labels", f"t{i}", ratings={"ok": {"verdict": "YES", "source": "human"}})
    store = builder.store()
    rep = build_report(store, "judged", calibration=calibrate(store, "judged", reference="labels"))
    assert "needs reference YES and NO" in rep["summary"]["criteria"]["ok"]["corrected"]["reason"]


def test_gate_on_the_corrected_rate_and_kappa(labelled: StoreBuilder) -> None:
    store = labelled.store()
    cal = calibrate(store, "judged", against="human", reference="labels")
    raw = gate(store, "judged", min_pass={"ok": 0.55})
    fixed = gate(store, "judged", min_pass={"ok": 0.55}, calibration=cal, corrected=True)
    assert not raw.passed and fixed.passed
    assert fixed.conditions[0].name == "corrected pass rate of ok >= 0.55"
    assert "sensitivity 0.667" in fixed.conditions[0].detail
    assert not gate(store, "judged", min_pass={"ok": 0.65}, calibration=cal, corrected=True).passed
    # "tidy" has no calibration: a corrected threshold on it fails with the reason
    tidy = gate(store, "judged", min_pass={"tidy": 0.5}, calibration=cal, corrected=True)
    assert not tidy.passed and tidy.conditions[0].detail == "no calibration data for this criterion"
    assert gate(store, "judged", calibration=cal, min_kappa=0.3).passed
    low = gate(store, "judged", calibration=cal, min_kappa=0.5)
    assert not low.passed and [c.name for c in low.conditions] == ["judge kappa of ok >= 0.5"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"min_pass": {"ok": 0.5}, "corrected": True}, "need calibration data"),
     ({"min_kappa": 0.5}, "need calibration data"),
     ({"calibration": {"criteria": {}}, "corrected": True}, "give at least one"),
     ({"calibration": {"criteria": {}}, "min_kappa": 2.0}, "outside")],
)
def test_gate_refuses_malformed_calibration_options(labelled: StoreBuilder, kwargs: dict, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        gate(labelled.store(), "judged", **kwargs)


def test_cli_report_and_gate_take_calibration(labelled: StoreBuilder, tmp_path: Path) -> None:
    labelled.release()
    db = str(labelled.path)
    r = CliRunner().invoke(cli, ["gate", "-e", "judged", "--db", db, "--calibration", "labels", "--corrected",
                                 "--min-pass", "ok=0.55", "--min-kappa", "0.3"])
    assert r.exit_code == 0, r.output
    assert "PASS  corrected pass rate of ok >= 0.55" in r.output
    saved = tmp_path / "cal.json"
    r = CliRunner().invoke(cli, ["calibrate", "-e", "judged", "-r", "labels", "--db", db, "--format", "json",
                                 "-o", str(saved)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["report", "-e", "judged", "--db", db, "--calibration", str(saved),
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["summary"]["criteria"]["ok"]["corrected"]["pass_rate"] == pytest.approx(0.6)
    r = CliRunner().invoke(cli, ["gate", "-e", "judged", "--db", db, "--corrected", "--min-pass", "ok=0.5"])
    assert r.exit_code == 2 and "need --calibration" in r.output


def test_a_saved_file_that_is_not_a_calibration_is_refused(labelled: StoreBuilder, tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text('{"kind": "report"}')
    with pytest.raises(InputError, match="not a calibration result"):
        load_calibration(labelled.store(), "judged", str(bad))
