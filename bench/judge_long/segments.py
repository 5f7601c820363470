"""Elision against segmented judging on long real agent runs, with the same judge in the same run.

Usage::

    .venv/bin/python -m bench.judge_long.segments [--split test|tune|all] [--limit N] [--quick]
                                                  [--model local/...] [--max-input-tokens N] [--overlap N]

Takes the labelled tau-bench airline runs of ``fixtures/long/`` (as ``bench.judge_long.run``
does), stores them twice through atif's public API (``atif.convert``, ``Store.upload``) and
judges them with ``atif.evaluate``: once with ``long: elide`` (the reference), once with
``long: segments, combine: final``. The segmented run keeps every segment's verdict in the
rating's ``votes``, so the ``any``, ``all`` and ``last`` rules are scored from the same calls
(what those rules would have stored: :func:`atif.judge.segments.combine`); ``final`` is the
stored verdict. Both variants see the same input budget (``--max-input-tokens``).

Prints, and writes ``segments.json`` beside this file: balanced accuracy, TPR, TNR (YES is the
positive class, reward 1.0 the truth), seconds per verdict (the judge's latency per pair: for a
segmented pair, the sum of its calls), calls per pair, segments per pair, the wall time of each
variant and the load average before and after. Full size: the test
split (10 runs); ``--quick``: 2 runs (one solved, one not) for ``make bench``. ``--rescore DB``
scores the store of a run that was stopped (its path is printed at the start; the ratings of the
pairs judged so far are committed), over the pairs both variants finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.judge_long.run import QUESTION, RESOLVED, _cases, _metrics, prepare

HERE = Path(__file__).resolve().parent
OUT = HERE / "segments.json"


def _variant(store: Any, outs: list[Path], tasks: Path, name: str, judge: dict[str, Any]) -> dict[str, Any]:
    from atif import evaluate, upload

    criteria = {"name": name, "judge": judge, "criteria": [{"label": RESOLVED, "question": QUESTION, "kind": "llm"}]}
    result = upload(outs, name, criteria=criteria, tasks_file=tasks, create_missing_tasks=True, store=store)
    if not result.ok:
        raise SystemExit(f"upload failed: {result}")
    load = os.getloadavg()
    started = time.perf_counter()
    summary = evaluate(store, name)
    seconds = time.perf_counter() - started
    ratings = _ratings(store, name)
    return {"ratings": ratings, "seconds": seconds, "calls": summary.calls, "load_before": load,
            "load_after": os.getloadavg()}


def _score(name: str, labels: dict[str, bool], verdicts: dict[str, str], ratings: list[dict[str, Any]],
           segments: float | None = None) -> dict[str, Any]:
    """One variant's row; seconds and calls come from the ratings (a rating's latency sums its calls)."""
    latency = [r["latency_ms"] / 1000 for r in ratings if r["latency_ms"] is not None]
    calls = [len([v for v in json.loads(r["votes"])]) if r.get("segmented") and r.get("votes") else 1
             for r in ratings]
    return {"variant": name, "pairs": len(ratings), **_metrics(labels, verdicts),
            "s_per_verdict": round(sum(latency) / len(latency), 1) if latency else None,
            "calls_per_pair": round(sum(calls) / len(calls), 2) if calls else None,
            "segments_per_pair": segments}


def summarise(cases: list[dict[str, Any]], elide: list[dict[str, Any]], seg: list[dict[str, Any]]) -> dict[str, Any]:
    """The table: elision against each combine rule, over the pairs both variants judged."""
    from atif.judge.segments import combine

    done = {r["task_name"] for r in elide} & {r["task_name"] for r in seg}
    labels = {c["case"]: c["reward"] >= 1.0 for c in cases if c["case"] in done}
    elide = [r for r in elide if r["task_name"] in done]
    seg = [r for r in seg if r["task_name"] in done]
    rows = [_score("elide", labels, {r["task_name"]: r["verdict"] for r in elide}, elide)]
    votes = {r["task_name"]: [v for v in json.loads(r["votes"] or "[]") if v.get("segment") != "final"]
             for r in seg}
    n_segments = [len(v) for v in votes.values() if v]
    mean_segments = round(sum(n_segments) / len(n_segments), 2) if n_segments else None
    whole = {r["task_name"]: r["verdict"] for r in seg if not r["segmented"]}
    for rule in ("any", "all", "last"):
        verdicts = {case: combine(rule, vs)[0] if vs else whole.get(case, "UNSCORED") for case, vs in votes.items()}
        # The same segment calls without the final pass: its call and seconds are not counted.
        rows.append({**_score(f"segments, {rule} (same calls)", labels, verdicts, seg, mean_segments),
                     "s_per_verdict": None, "calls_per_pair": mean_segments})
    rows.append(_score("segments, final", labels, {r["task_name"]: r["verdict"] for r in seg}, seg, mean_segments))
    return {"pairs": len(labels), "segmented_pairs": sum(1 for r in seg if r["segmented"]), "rows": rows,
            "errors": sorted({r["error"] for r in elide + seg if r["error"]}),
            "per_case": {c: {"reward": float(labels[c]),
                             "elide": next((r["verdict"] for r in elide if r["task_name"] == c), None),
                             "segments": [v["verdict"] for v in votes.get(c, [])],
                             "final": next((r["verdict"] for r in seg if r["task_name"] == c), None)}
                         for c in labels}}


def _read(db: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from atif import Store

    with Store(db) as store:  # writable: a stopped run's log is replayed on opening
        return _ratings(store, "elide"), _ratings(store, "segments")


def _ratings(store: Any, experiment: str) -> list[dict[str, Any]]:
    """The experiment's ratings, each named by its case (the folder its run was read from)."""
    cols, rows = store.query("select r.*, t.metadata as trial_metadata from ratings r join trials t "
                             "using (trial_id) where r.experiment = ?", [experiment])
    out = []
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        source = json.loads(r.pop("trial_metadata") or "{}").get("source_path") or ""
        r["task_name"] = Path(source).parent.name or r["task_name"]
        out.append(r)
    return sorted(out, key=lambda r: r["task_name"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from atif import Store

    cases = _cases(args.split, 2 if args.quick else args.limit)
    if args.rescore:
        elide, seg = _read(Path(args.rescore))
        return {"split": args.split, "cases": len(cases), "model": args.model, "max_input_tokens": args.max_input_tokens,
                "overlap": args.overlap, "rescored": args.rescore, **summarise(cases, elide, seg),
                "cpus": os.cpu_count(), "load": list(os.getloadavg())}
    work = Path(tempfile.mkdtemp(prefix="atif-judge-segments-"))
    try:
        outs, tasks = prepare(cases, work)
        judge: dict[str, Any] = {"model": args.model}
        if args.max_input_tokens:
            judge["max_input_tokens"] = args.max_input_tokens
        print(f"store: {work / 'atif.duckdb'} (ratings are committed as they come)", file=sys.stderr)
        with Store(work / "atif.duckdb") as store:
            elide = _variant(store, outs, tasks, "elide", {**judge, "long": "elide"})
            seg = _variant(store, outs, tasks, "segments",
                           {**judge, "long": "segments", "combine": "final", "overlap": args.overlap})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"split": args.split, "cases": len(cases), "model": args.model, "max_input_tokens": args.max_input_tokens,
            "overlap": args.overlap, **summarise(cases, elide["ratings"], seg["ratings"]),
            "wall_seconds": {"elide": round(elide["seconds"], 1), "segments": round(seg["seconds"], 1)},
            "load": {"elide": [elide["load_before"], elide["load_after"]],
                     "segments": [seg["load_before"], seg["load_after"]]},
            "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("test", "tune", "all"), default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--quick", action="store_true", help="Two runs only (one solved, one not).")
    parser.add_argument("--model", default="local/qwen2.5-coder-0.5b")
    parser.add_argument("--max-input-tokens", type=int)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--rescore", metavar="DB", help="Score the store of an earlier (or stopped) run instead.")
    args = parser.parse_args(argv)
    result = run(args)
    if not args.quick:
        OUT.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "per_case"}, indent=2))
    for row in result["rows"]:
        print(" | ".join(str(row[k]) for k in ("variant", "pairs", "balanced_accuracy", "tpr", "tnr", "s_per_verdict",
                                                "calls_per_pair", "segments_per_pair")), file=sys.stderr)


if __name__ == "__main__":
    main()
