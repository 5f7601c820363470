"""Scoring judge benchmark runs: agreement with the labels, confusion, cost, latency, McNemar.

Takes what :mod:`atif.judge.bench` collected (each run's verdict per labelled case) as plain
data and computes, per run, overall and per criterion: accuracy (UNSCORED counts as wrong),
the confusion matrix over scored cases (rows: judge, columns: label), Cohen's kappa and the
calibration metrics with 95% intervals; cost and mean latency of the calls actually made.
Two runs are compared on the same cases with McNemar's exact test on the cases exactly one
of them got right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from atif.report.reading import clean
from atif.report.stats import binary_metrics, cohen_kappa, mcnemar_exact

__all__ = ["score_bench"]


def _score(cases: Sequence[Mapping[str, Any]], verdicts: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, Any]:
    matrix = {"YES": {"YES": 0, "NO": 0}, "NO": {"YES": 0, "NO": 0}}
    correct = unscored = 0
    for c in cases:
        v = verdicts[(c["trial_id"], c["criterion"])]["verdict"]
        if v in ("YES", "NO"):
            matrix[v][c["reference"]] += 1
            correct += v == c["reference"]
        else:
            unscored += 1
    n = len(cases)
    return {"n_cases": n, "n_correct": correct, "n_unscored": unscored, "accuracy": correct / n if n else None,
            "confusion": matrix, "kappa": cohen_kappa(matrix), "metrics": binary_metrics(matrix)}


def score_bench(cases: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                problems: Sequence[str] = ()) -> dict[str, Any]:
    """The benchmark result: ``cases`` are ``{trial_id, criterion, reference}``; each run is
    ``{name, model, seconds, verdicts: {(trial_id, criterion): {verdict, cost_usd, latency_ms, cached}}}``."""
    out_runs = []
    for run in runs:
        verdicts = run["verdicts"]
        calls = [v for v in verdicts.values() if not v.get("cached") and v.get("latency_ms") is not None]
        costs = [v["cost_usd"] for v in verdicts.values() if v.get("cost_usd") is not None]
        by_criterion = {}
        for label in sorted({c["criterion"] for c in cases}):
            by_criterion[label] = _score([c for c in cases if c["criterion"] == label], verdicts)
        out_runs.append({
            "name": run["name"], "model": run.get("model"), "seconds": run.get("seconds"),
            "overall": _score(cases, verdicts), "criteria": by_criterion,
            "cost_usd": sum(costs) if costs else None,
            "mean_latency_ms": sum(v["latency_ms"] for v in calls) / len(calls) if calls else None,
            "n_calls": len(calls),
        })
    result: dict[str, Any] = {"kind": "judge_bench", "schema_version": "1", "n_cases": len(cases),
                              "problems": list(problems), "runs": out_runs}
    if len(runs) == 2:
        a, b = (r["verdicts"] for r in runs)
        only_a = sum(1 for c in cases if a[(c["trial_id"], c["criterion"])]["verdict"] == c["reference"]
                     and b[(c["trial_id"], c["criterion"])]["verdict"] != c["reference"])
        only_b = sum(1 for c in cases if b[(c["trial_id"], c["criterion"])]["verdict"] == c["reference"]
                     and a[(c["trial_id"], c["criterion"])]["verdict"] != c["reference"])
        result["comparison"] = {"only_first_right": only_a, "only_second_right": only_b,
                                "mcnemar_p": mcnemar_exact(only_a, only_b)}
    return clean(result)
