"""Which score's threshold transfers: fit on the tune split, measure on the held-out test split.

Usage::

    .venv/bin/python -m bench.judge_long.scores [--name NAME]

Reads run NAME of ``results.json`` (made with ``run.py --split all --probes``: every run
judged on the labelled question, on its negation and on a baseline question, in one server
session) and, for each way of turning those ``p_yes`` into one score, fits the threshold on the
``tune`` cases only (``atif.judge.score.fit_threshold``) and applies it unchanged to the
``test`` cases. Prints balanced accuracy, TPR, TNR and ROC AUC on test, and the tune figures
beside them; merges them into ``results.json`` under ``NAME-scores``.

The scores:

- ``p_yes``: the labelled question's p_yes as stored (the judge's default score);
- ``contrastive``: logit p_yes(resolved) - logit p_yes(failed), the question against its
  negation: a transcript that pulls the model towards YES pulls both, and the difference cancels it;
- ``baseline``: logit p_yes(resolved) - logit p_yes(baseline), the same against a question with
  no bearing on success.

Beside the tune-to-test transfer, each split is also scored leave-one-out (``loo``): every run's
verdict comes from the threshold fitted on the other runs of its own split. That is what
``atif calibrate --fit-threshold`` gives a user who labels some runs of the population they judge,
with no run ever judged by a threshold fitted on its own label.

``--mean-of RUN...`` scores an ensemble: each case's ``p_yes`` becomes the logistic of the mean
logit of its ``p_yes`` over the named runs (other models, prompts or transcripts on the same
cases), and the same tune-to-test and leave-one-out figures follow. Its cost is the sum of theirs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.judge_long.run import FIXTURES, RESULTS, _metrics, record, roc_auc


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


SCORES = {
    "p_yes": lambda c: c["p_yes"],
    "contrastive": lambda c: _logit(c["p_yes"]) - _logit(c["p_yes_failed"]),
    "baseline": lambda c: _logit(c["p_yes"]) - _logit(c["p_yes_baseline"]),
}


def evaluate_scores(per_case: dict[str, Any], split_of: dict[str, str]) -> dict[str, Any]:
    from atif.judge.score import fit_threshold

    out: dict[str, Any] = {}
    for name, score in SCORES.items():
        values: dict[str, float] = {}
        for case, c in per_case.items():
            try:
                values[case] = float(score(c))
            except (KeyError, TypeError):
                continue
        if not values:
            continue  # a run without --probes has no negation or baseline scores
        labels = {case: per_case[case]["reward"] >= 1.0 for case in values}
        tune = [(values[c], labels[c]) for c in values if split_of[c] == "tune"]
        threshold = fit_threshold(tune)
        if threshold is None and tune:
            continue
        row: dict[str, Any] = {"threshold": threshold}
        for split in ("tune", "test"):
            cases = [c for c in values if split_of[c] == split]
            verdicts = {c: "YES" if threshold is not None and values[c] >= threshold else "NO" for c in cases}
            m = _metrics({c: labels[c] for c in cases}, verdicts)
            row[split] = {"balanced_accuracy": m["balanced_accuracy"], "tpr": m["tpr"], "tnr": m["tnr"],
                          "roc_auc": roc_auc([(values[c], labels[c]) for c in cases]), "n": len(cases),
                          "range": [round(min(values[c] for c in cases), 3), round(max(values[c] for c in cases), 3)]
                          if cases else None}
        row["loo"] = {split: _leave_one_out({c: values[c] for c in values if split_of[c] == split}, labels)
                      for split in ("tune", "test")}
        out[name] = row
    return out


def _leave_one_out(values: dict[str, float], labels: dict[str, bool]) -> dict[str, Any]:
    """Balanced accuracy, TPR and TNR when each case's threshold is fitted on the other cases alone."""
    from atif.judge.score import fit_threshold

    verdicts = {}
    for case, value in values.items():
        threshold = fit_threshold([(values[c], labels[c]) for c in values if c != case])
        verdicts[case] = "YES" if threshold is not None and value >= threshold else "NO"
    m = _metrics({c: labels[c] for c in values}, verdicts)
    return {"balanced_accuracy": m["balanced_accuracy"], "tpr": m["tpr"], "tnr": m["tnr"], "n": len(values)}


def from_store(path: str) -> dict[str, Any]:
    """Per-case p_yes of each criterion read from a (copy of a) run's scratch store (``run.py --keep-store``).

    The case is the folder of the run's source file, so this also reads a run whose trials were
    not named after their case.
    """
    import duckdb

    labels = {r["case"]: r for r in map(json.loads, (FIXTURES / "labels.jsonl").read_text().splitlines())}
    con = duckdb.connect(path, read_only=True)
    rows = con.execute("""
        SELECT json_extract_string(t.metadata, '$.source_path') AS src, r.criterion, r.p_yes, r.latency_ms,
               r.prompt_tokens
        FROM rating_data r JOIN trial_data t USING (trial_id) WHERE r.p_yes IS NOT NULL""").fetchall()
    per_case: dict[str, Any] = {}
    for src, criterion, score, latency, tokens in rows:
        case = Path(src).parent.name
        c = per_case.setdefault(case, {"reward": labels[case]["reward"]})
        if criterion == "resolved":
            c.update(p_yes=score, first_s=latency / 1000, prompt_tokens=tokens)
        else:
            c[f"p_yes_{criterion}"] = score
            c.setdefault("further_s", []).append(latency / 1000)
    return {"per_case": per_case}


def join(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run from several (a tune run and a test run judged apart): their cases, summed counts, mean timings."""
    per_case: dict[str, Any] = {}
    for run in runs:
        per_case.update(run["per_case"])

    def mean(key: str) -> float | None:
        pairs = [(run[key], run["cases"]) for run in runs if run.get(key) is not None]
        return round(sum(v * n for v, n in pairs) / sum(n for _, n in pairs), 1) if pairs else None

    first = runs[0]
    return {**{k: first.get(k) for k in ("model", "transcript", "batch", "cpus", "machine")},
            "split": "all", "cases": sum(run["cases"] for run in runs), "per_case": per_case,
            "s_per_verdict_first": mean("s_per_verdict_first"), "s_per_verdict_further": mean("s_per_verdict_further"),
            "calls_per_pair": mean("calls_per_pair"), "prompt_tokens_mean": mean("prompt_tokens_mean"),
            "load_before": max((run["load_before"] for run in runs), key=lambda x: x[0]),
            "load_after": max((run["load_after"] for run in runs), key=lambda x: x[0]),
            "when": runs[-1]["when"], "joined": [run.get("when") for run in runs],
            "command": " && ".join(str(run.get("command")) for run in runs)}


def mean_of(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One run whose p_yes per case is the logistic of the mean logit over ``runs`` (cases judged in all of them)."""
    cases = set.intersection(*(set(run["per_case"]) for run in runs.values()))
    per_case: dict[str, Any] = {}
    for case in sorted(cases):
        scores = [run["per_case"][case].get("p_yes") for run in runs.values()]
        if any(score is None for score in scores):
            continue
        mean = sum(_logit(score) for score in scores) / len(scores)
        per_case[case] = {"reward": next(iter(runs.values()))["per_case"][case]["reward"],
                          "p_yes": 1 / (1 + math.exp(-mean))}
    return {"per_case": per_case, "mean_of": sorted(runs),
            "command": " && ".join(str(run.get("command")) for run in runs.values())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="probes-all")
    parser.add_argument("--store", help="Read the per-case scores from this scratch store (copy) into run NAME first.")
    made_from = parser.add_mutually_exclusive_group()
    made_from.add_argument("--runs", nargs="+", metavar="RUN",
                           help="Join these runs of results.json (e.g. the tune run and the test run) into run NAME first.")
    made_from.add_argument("--mean-of", nargs="+", metavar="RUN",
                           help="Score the mean logit of p_yes over these runs of results.json as run NAME first.")
    parser.add_argument("--record", choices=sorted(SCORES),
                        help="Write this score's test figures (and the run's timings) for `atif judge models`.")
    args = parser.parse_args(argv)
    stored = json.loads(RESULTS.read_text(encoding="utf-8"))
    if args.store:
        stored[args.name] = {**stored.get(args.name, {}), **from_store(args.store)}
    if args.runs:
        stored[args.name] = join([stored[run] for run in args.runs])
    if args.mean_of:
        stored[args.name] = mean_of({run: stored[run] for run in args.mean_of})
    split_of = {r["case"]: r["split"] for r in map(json.loads, (FIXTURES / "labels.jsonl").read_text().splitlines())}
    result = evaluate_scores(stored[args.name]["per_case"], split_of)
    stored[f"{args.name}-scores"] = result
    RESULTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.record:
        if "load_before" not in stored[args.name]:
            raise SystemExit(f"run {args.name} has no timings or load (read with --store or made with --mean-of): "
                             "nothing to record")
        row = result[args.record]
        made = stored[args.name].get("command") or f"python -m bench.judge_long.run --split all --probes --no-further --name {args.name}"
        record(stored[args.name], row["test"], score=args.record, threshold=f"fitted on tune ({row['threshold']:.4g})",
               command=f"{made} && python -m bench.judge_long.scores --name {args.name}"
                       + (f" --runs {' '.join(args.runs)}" if args.runs else "") + f" --record {args.record}")
    for name, row in result.items():
        t, s = row["tune"], row["test"]
        print(f"{name:12s} threshold {row['threshold']}: test BA {s['balanced_accuracy']} TPR {s['tpr']} "
              f"TNR {s['tnr']} AUC {s['roc_auc']} range {s['range']} | tune BA {t['balanced_accuracy']} "
              f"AUC {t['roc_auc']} range {t['range']}", file=sys.stdout)
        for split, m in row["loo"].items():
            print(f"{'':12s} leave-one-out within {split}: BA {m['balanced_accuracy']} TPR {m['tpr']} TNR {m['tnr']} "
                  f"(n {m['n']})", file=sys.stdout)


if __name__ == "__main__":
    main()
