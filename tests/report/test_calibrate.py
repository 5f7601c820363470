"""calibrate: judge vs a reference experiment or a reference file; kappa, confusion, disagreements."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from report_builders import StoreBuilder

from atif.cli import cli
from atif.errors import InputError, ReportError
from atif.report import calibrate, render_calibration_md
from atif.store import Store

# judge, human per task for criterion "ok": 20 YY, 5 YN, 10 NY, 15 NN  -> agreement .7, kappa .4
_PLAN = [("YES", "YES")] * 20 + [("YES", "NO")] * 5 + [("NO", "YES")] * 10 + [("NO", "NO")] * 15


@pytest.fixture
def labelled(builder: StoreBuilder) -> StoreBuilder:
    for i, (j, h) in enumerate(_PLAN):
        builder.trial("judged", f"t{i:02d}", ratings={
            "ok": {"verdict": j, "reasoning": f"judge says {j}"},
            "tidy": "YES",
        })
        builder.trial("labels", f"t{i:02d}", ratings={"ok": {"verdict": h, "source": "human"}})
    builder.trial("judged", "t-unscored", ratings={"ok": {"verdict": "UNSCORED"}})
    builder.trial("labels", "t-unscored", ratings={"ok": {"verdict": "YES", "source": "human"}})
    builder.trial("labels", "t-pre", ratings={"ok": {"verdict": "YES", "source": "precomputed"}})
    builder.trial("judged", "t-pre", ratings={"ok": "NO"})
    return builder


def test_against_a_reference_experiment(labelled: StoreBuilder) -> None:
    r = calibrate(labelled.store(), "judged", against="human", reference="labels")
    o = r["overall"]
    assert o["n_pairs"] == 50 and o["agreement"] == pytest.approx(0.7) and o["kappa"] == pytest.approx(0.4)
    assert o["confusion"] == {"YES": {"YES": 20, "NO": 5}, "NO": {"YES": 10, "NO": 15}}
    assert o["n_judge_unscored"] == 1
    assert list(r["criteria"]) == ["ok"]  # "tidy" has no human reference
    assert r["n_disagreements"] == 15 and len(r["disagreements"]) == 15
    d = r["disagreements"][0]
    assert {d["judge"], d["reference"]} == {"YES", "NO"} and d["reasoning"].startswith("judge says")
    assert r["reference"] == {"experiment": "labels"}


def test_against_precomputed_picks_that_source_only(labelled: StoreBuilder) -> None:
    r = calibrate(labelled.store(), "judged", against="precomputed", reference="labels")
    assert r["overall"]["n_pairs"] == 1 and r["overall"]["agreement"] == 0.0
    assert r["overall"]["kappa"] == 0.0  # po 0, pe 0


def test_against_a_reference_file(labelled: StoreBuilder, tmp_path: Path) -> None:
    f = tmp_path / "labels.jsonl"
    lines = [{"task_name": f"t{i:02d}", "criterion": "ok", "rating": h.lower()} for i, (_, h) in enumerate(_PLAN)]
    lines.append({"task_name": "t00", "epoch": 2, "criterion": "ok", "rating": True})  # no such trial
    lines.append({"task_name": "t01", "criterion": "ok", "rating": "NO", "source": "precomputed"})  # other source
    f.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n\n")
    r = calibrate(labelled.store(), "judged", against="human", reference_file=f)
    assert r["overall"]["n_pairs"] == 50 and r["overall"]["kappa"] == pytest.approx(0.4)
    assert r["reference"]["n_ratings"] == 51


def test_reference_file_errors(labelled: StoreBuilder, tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    for content, msg in (
        (b'{"task_name": "a", "criterion": "ok", "rating": "maybe"}\n', "line 1: `rating` must be YES or NO"),
        (b'not json\n', "line 1: not JSON"),
        (b'{"criterion": "ok", "rating": "YES"}\n', "`task_name`"),
        (b'{"task_name": "a", "criterion": "ok", "rating": "YES", "epoch": 0}\n', "`epoch`"),
        (b'{"task_name": "a", "criterion": "ok", "rating": "YES"}\n'
         + b'{"task_name": "a", "criterion": "ok", "rating": "NO"}\n', "line 2: a second rating"),
    ):
        f.write_bytes(content)
        with pytest.raises(InputError, match=msg):
            calibrate(labelled.store(), "judged", against="human", reference_file=f)
    with pytest.raises(InputError, match="cannot read"):
        calibrate(labelled.store(), "judged", against="human", reference_file=tmp_path / "missing.jsonl")


def test_within_one_experiment_labels_meet_the_judge_verdicts_they_replaced(labelled: StoreBuilder) -> None:
    labelled.con.execute("INSERT INTO criterion_sets (name) VALUES ('cs')")
    labelled.con.execute("INSERT INTO criteria (criterion_set, label, question, kind, position) "
                         "VALUES ('cs', 'ok', 'Is it ok?', 'llm', 0)")
    labelled.con.execute("UPDATE experiments SET criterion_set = 'cs' WHERE name = 'judged'")
    labelled.close()
    ids = {r["task_name"]: r["trial_id"] for r in labelled.store().read(
        "SELECT task_name, trial_id FROM trials WHERE experiment = 'judged'")}
    labelled.release()
    with Store(labelled.path) as store:
        # Nothing replaced yet: no label of this experiment to compare with.
        with pytest.raises(ReportError, match="no trial x criterion"):
            calibrate(store, "judged", against="human")
        rows = [{"trial_id": ids[f"t{i:02d}"], "criterion": "ok", "verdict": h, "source": "human",
                 "reasoning": "reviewer"} for i, (_, h) in enumerate(_PLAN)]
        assert all(store.save_ratings(rows))
        replaced = store.read("SELECT source, count(*) AS n FROM replaced_ratings GROUP BY source")
        assert replaced == [{"source": "judge", "n": 50}]
        assert store.read("SELECT DISTINCT source FROM ratings WHERE experiment = 'judged' AND criterion = 'ok' "
                          "AND task_name LIKE 't__'") == [{"source": "human"}]
        for r in (calibrate(store, "judged", against="human"),
                  calibrate(store, "judged", against="human", reference="judged")):
            o = r["overall"]
            assert o["n_pairs"] == 50 and o["agreement"] == pytest.approx(0.7) and o["kappa"] == pytest.approx(0.4)
            assert o["confusion"] == {"YES": {"YES": 20, "NO": 5}, "NO": {"YES": 10, "NO": 15}}
            assert r["reference"] == {"experiment": "judged", "replaced_judge_ratings": True}
            assert r["disagreements"][0]["reasoning"].startswith("judge says")


def test_usage_errors(labelled: StoreBuilder, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="give one reference"):
        calibrate(labelled.store(), "judged", reference="labels", reference_file=tmp_path / "x.jsonl")
    with pytest.raises(ReportError, match="--against"):
        calibrate(labelled.store(), "judged", against="judge", reference="labels")
    with pytest.raises(ReportError, match="no trial x criterion"):
        calibrate(labelled.store(), "labels", against="human", reference="judged")


def test_markdown_and_cli(labelled: StoreBuilder, tmp_path: Path) -> None:
    md = render_calibration_md(calibrate(labelled.store(), "judged", against="human", reference="labels"))
    assert "agreement **70.0%**" in md and "Cohen's κ **0.400**" in md
    assert "| judge YES | 20 | 5 |" in md and "Disagreements (15)" in md
    labelled.close()
    r = CliRunner().invoke(cli, ["calibrate", "-e", "judged", "--against", "human", "--reference", "labels",
                                 "--format", "json", "--db", str(tmp_path / "atif.duckdb")])
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.output)["overall"]["n_pairs"] == 50
