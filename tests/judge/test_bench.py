"""``atif judge bench``: a judge configuration over labelled trials, side by side with another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import respx
from click.testing import CliRunner

from atif.cli import cli
from atif.errors import InputError
from atif.judge.bench import bench_labels, run_bench
from atif.judge.criteria import load_criteria
from atif.report.benchmark import score_bench
from atif.store import Store
from tests.judge.test_engine import API, CHAT, MODEL, build_store, completion, trajectory

TASKS = ("t1", "t2", "t3", "t4")
TRUTH = {"t1": "YES", "t2": "YES", "t3": "NO", "t4": "NO"}


@pytest.fixture
def labelled(tmp_path: Path) -> tuple[Path, Path, Path]:
    trials = [{"task_name": t, "trajectory": trajectory(t)} for t in TASKS]
    db = build_store(tmp_path, [{"label": "done", "question": "Did the agent finish?", "kind": "llm"}], trials=trials)
    labels = tmp_path / "labels.jsonl"
    rows = [{"task_name": t, "epoch": 1, "criterion": "done", "rating": v} for t, v in TRUTH.items()]
    rows += [{"task_name": "t9", "criterion": "done", "rating": "YES"},  # no such trial: reported
             {"task_name": "t1", "criterion": "tidy", "rating": "NO"}]  # not in the criteria file: reported
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    crit = tmp_path / "criteria.yaml"
    crit.write_text(f"name: cs\njudge: {{model: {MODEL}, api_base: '{API}'}}\n"
                    "criteria:\n  - label: done\n    question: Did the agent finish?\n")
    return db, labels, crit


def _answer(request: object) -> object:
    body = json.loads(request.content)  # type: ignore[attr-defined]
    text = json.dumps(body["messages"])
    task = next(t for t in TASKS if f"do {t}." in text)
    # the compared model is right every time; the configured one always says YES
    rating = TRUTH[task] if body["model"] == "gpt-4o" else "YES"
    return completion(rating=rating)


def test_bench_scores_two_configurations_with_mcnemar(labelled: tuple[Path, Path, Path]) -> None:
    db, labels, crit = labelled
    criteria = load_criteria(crit)
    with Store(db, read_only=True) as store, respx.mock(assert_all_called=False) as api:
        api.post(CHAT).mock(side_effect=_answer)
        cases, problems = bench_labels(store, labels, criteria, experiment="exp")
        runs = [run_bench(store, cases, criteria), run_bench(store, cases, criteria, model="openai/gpt-4o",
                                                             api_base=API)]
        n_ratings = store.read_one("SELECT count(*) FROM ratings")[0]
    assert n_ratings == 0  # the user's store is only read
    assert len(cases) == 4
    assert problems == ["line 5: task 't9' epoch 1 has no trial in experiment 'exp'",
                        "line 6: criterion 'tidy' is not in the criteria file"]
    result = score_bench([{"trial_id": c.trial_id, "criterion": c.criterion, "reference": c.reference} for c in cases],
                         [{"name": r.name, "model": r.model, "seconds": r.seconds, "verdicts": r.verdicts} for r in runs],
                         problems)
    first, second = result["runs"]
    assert first["overall"]["accuracy"] == 0.5 and first["overall"]["confusion"]["YES"] == {"YES": 2, "NO": 2}
    assert second["overall"]["accuracy"] == 1.0 and second["overall"]["kappa"] == 1.0
    assert first["n_calls"] == 4 and first["cost_usd"] > 0 and first["mean_latency_ms"] is not None
    assert result["comparison"] == {"only_first_right": 0, "only_second_right": 2, "mcnemar_p": 0.5}


def test_cli_bench_prints_the_table(labelled: tuple[Path, Path, Path]) -> None:
    db, labels, crit = labelled
    with respx.mock(assert_all_called=False) as api:
        api.post(CHAT).mock(side_effect=_answer)
        r = CliRunner().invoke(cli, ["judge", "bench", str(labels), "-e", "exp", "--criteria", str(crit),
                                     "--compare", "openai/gpt-4o", "--judge-api-base", API, "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "## atif judge bench: 4 labelled cases" in r.output
    assert "| openai/gpt-4o-mini | 50.0% |" in r.output
    assert "McNemar's exact test: 0 cases only openai/gpt-4o-mini got right, 2 only openai/gpt-4o; p = 0.5." in r.output
    assert "2 label(s) left out:" in r.output


def test_labels_from_an_experiment_need_its_human_ratings(labelled: tuple[Path, Path, Path]) -> None:
    db, _, crit = labelled
    with Store(db, read_only=True) as store, pytest.raises(InputError, match="has no human YES/NO ratings"):
        bench_labels(store, "exp", load_criteria(crit))


def test_a_labels_file_needs_an_experiment(labelled: tuple[Path, Path, Path]) -> None:
    db, labels, crit = labelled
    with Store(db, read_only=True) as store, pytest.raises(InputError, match="needs --experiment"):
        bench_labels(store, labels, load_criteria(crit))


def test_only_the_labelled_pairs_are_judged(tmp_path: Path) -> None:
    criteria = [{"label": "done", "question": "Did the agent finish?", "kind": "llm"},
                {"label": "tidy", "question": "Was the agent tidy?", "kind": "llm"}]
    db = build_store(tmp_path, criteria, trials=[{"task_name": t, "trajectory": trajectory(t)} for t in ("t1", "t2")])
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"task_name": "t1", "criterion": "done", "rating": "YES"}) + "\n"
                      + json.dumps({"task_name": "t2", "criterion": "tidy", "rating": "NO"}) + "\n")
    crit = tmp_path / "criteria.yaml"
    crit.write_text(f"name: cs\njudge: {{model: {MODEL}, api_base: '{API}'}}\ncriteria:\n"
                    "  - {label: done, question: 'Did the agent finish?'}\n  - {label: tidy, question: 'Was the agent tidy?'}\n")
    cf = load_criteria(crit)
    with Store(db, read_only=True) as store, respx.mock(assert_all_called=False) as api:
        route = api.post(CHAT).mock(return_value=completion(rating="YES"))
        cases, _ = bench_labels(store, labels, cf, experiment="exp")
        run = run_bench(store, cases, cf)
    asked = sorted(("finish" in json.dumps(json.loads(c.request.content)["messages"]),
                    "do t1." in json.dumps(json.loads(c.request.content)["messages"])) for c in route.calls)
    assert asked == [(False, False), (True, True)]  # t1 asked "done", t2 asked "tidy", nothing else
    assert {k[1]: v["verdict"] for k, v in run.verdicts.items()} == {"done": "YES", "tidy": "YES"}
