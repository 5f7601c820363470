"""The labelled long runs of ``fixtures/long``: two balanced halves that share no task, every run readable."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from bench.judge_long.build_fixtures import BATCH2, messages
from bench.judge_long.run import _cases

LABELS = Path(__file__).resolve().parents[2] / "fixtures" / "long" / "labels.jsonl"


def _rows() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]


def test_each_split_holds_ten_solved_and_ten_failed_runs_and_no_task_is_in_both() -> None:
    rows = _rows()
    counts = Counter((r["split"], r["reward"]) for r in rows)
    assert counts == {("tune", 1.0): 10, ("tune", 0.0): 10, ("test", 1.0): 10, ("test", 0.0): 10}
    tasks = {split: {r["task_id"] for r in rows if r["split"] == split} for split in ("tune", "test")}
    assert not tasks["tune"] & tasks["test"]
    assert len({r["task_id"] for r in rows}) == len(rows)   # one run per task


def test_batch_one_is_the_first_twenty_runs_as_before() -> None:
    first = _cases("all", None, batch="1")
    assert len(first) == 20 and all("batch" not in r for r in first)
    assert Counter((r["split"], r["reward"]) for r in first) == {("tune", 1.0): 5, ("tune", 0.0): 5,
                                                                 ("test", 1.0): 5, ("test", 0.0): 5}
    assert len(_cases("all", None, batch="2")) == 20 and len(_cases("tune", None)) == 20


def test_every_case_reads_as_a_conversation_with_its_instruction() -> None:
    for row in _rows():
        conversation = messages(row["case"])["messages"]
        assert conversation[0]["role"] == "system" and any(m["role"] == "user" for m in conversation)
        assert row["instruction"]
    assert BATCH2.stat().st_size < 100_000


def test_leave_one_out_never_judges_a_run_by_a_threshold_fitted_on_its_own_label() -> None:
    from bench.judge_long.scores import _leave_one_out

    # Separable scores: every held-out run falls on its own side of the others' threshold.
    values = {f"s{i}": 0.6 + i / 100 for i in range(5)} | {f"f{i}": 0.2 + i / 100 for i in range(5)}
    labels = {c: c.startswith("s") for c in values}
    assert _leave_one_out(values, labels) == {"balanced_accuracy": 1.0, "tpr": 1.0, "tnr": 1.0, "n": 10}
    # One solved run scored among the failed ones: fitted on its own label it would pass; held out, it
    # falls below the threshold the other nine give, so it alone is missed.
    values["s0"] = 0.21
    result = _leave_one_out(values, labels)
    assert (result["tpr"], result["tnr"]) == (0.8, 1.0)


def test_mean_of_averages_logits_over_the_cases_every_run_scored() -> None:
    from bench.judge_long.scores import mean_of

    a = {"per_case": {"x": {"reward": 1.0, "p_yes": 0.9}, "y": {"reward": 0.0, "p_yes": 0.5},
                      "z": {"reward": 0.0, "p_yes": 0.7}}}
    b = {"per_case": {"x": {"reward": 1.0, "p_yes": 0.5}, "y": {"reward": 0.0, "p_yes": 0.1},
                      "z": {"reward": 0.0, "p_yes": None}}}
    c = {"per_case": {"x": {"reward": 1.0, "p_yes": 0.9}}}
    joined = mean_of({"a": a, "b": b})["per_case"]
    assert sorted(joined) == ["x", "y"]  # z has no score in b
    # logit(0.9) = ln 9 and logit(0.5) = 0: the mean logit is ln 3, i.e. p = 0.75
    assert math.isclose(joined["x"]["p_yes"], 0.75) and joined["x"]["reward"] == 1.0
    assert math.isclose(joined["y"]["p_yes"], 0.25)
    assert sorted(mean_of({"a": a, "c": c})["per_case"]) == ["x"]


def test_scores_refuses_joining_and_averaging_runs_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.judge_long.scores import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--name", "x", "--runs", "a", "--mean-of", "b"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
