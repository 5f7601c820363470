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
positive class, reward 1.0 the truth), seconds per verdict (wall time of the run over pairs),
calls per pair, segments per pair, and the load average before and after. Full size: the test
split (10 runs); ``--quick``: 2 runs (one solved, one not) for ``make bench``.
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

from bench.judge_long.run import FIXTURES, QUESTION, RESOLVED, _cases, _metrics

HERE = Path(__file__).resolve().parent
OUT = HERE / "segments.json"


def _variant(store: Any, out: Path, tasks: Path, name: str, judge: dict[str, Any]) -> dict[str, Any]:
    from atif import evaluate, upload

    criteria = {"name": name, "judge": judge, "criteria": [{"label": RESOLVED, "question": QUESTION, "kind": "llm"}]}
    result = upload([out], name, criteria=criteria, tasks_file=tasks, create_missing_tasks=True, store=store)
    if not result.ok:
        raise SystemExit(f"upload failed: {result}")
    load = os.getloadavg()
    started = time.perf_counter()
    summary = evaluate(store, name)
    seconds = time.perf_counter() - started
    cols, rows = store.query("select * from ratings where experiment = ? order by task_name", [name])
    ratings = [dict(zip(cols, r, strict=True)) for r in rows]
    return {"ratings": ratings, "seconds": seconds, "calls": summary.calls, "load_before": load,
            "load_after": os.getloadavg()}


def _score(name: str, labels: dict[str, bool], verdicts: dict[str, str], run: dict[str, Any],
           segments: float | None = None) -> dict[str, Any]:
    pairs = max(1, len(run["ratings"]))
    return {"variant": name, **_metrics(labels, verdicts), "s_per_verdict": round(run["seconds"] / pairs, 1),
            "calls_per_pair": round(run["calls"] / pairs, 2), "segments_per_pair": segments,
            "load_before": [round(x, 2) for x in run["load_before"]],
            "load_after": [round(x, 2) for x in run["load_after"]]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from atif import Store, convert
    from atif.judge.segments import combine

    cases = _cases(args.split, 2 if args.quick else args.limit)
    work = Path(tempfile.mkdtemp(prefix="atif-judge-segments-"))
    try:
        raw = work / "raw"
        for case in cases:
            (raw / case["case"]).mkdir(parents=True)
            shutil.copy(FIXTURES / f"{case['case']}.json", raw / case["case"] / "run.json")
        tasks = work / "tasks.jsonl"
        tasks.write_text("".join(json.dumps({"name": c["case"], "instruction": c["instruction"]}) + "\n"
                                 for c in cases), encoding="utf-8")
        converted = convert(sorted(raw.glob("*/run.json")), work / "out")
        if converted.failures:
            raise SystemExit(f"conversion failed: {converted.failures}")
        judge: dict[str, Any] = {"model": args.model}
        if args.max_input_tokens:
            judge["max_input_tokens"] = args.max_input_tokens
        with Store(work / "atif.duckdb") as store:
            elide = _variant(store, work / "out", tasks, "elide", {**judge, "long": "elide"})
            seg = _variant(store, work / "out", tasks, "segments",
                           {**judge, "long": "segments", "combine": "final", "overlap": args.overlap})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels = {c["case"]: c["reward"] >= 1.0 for c in cases}
    rows = [_score("elide", labels, {r["task_name"]: r["verdict"] for r in elide["ratings"]}, elide)]
    votes = {r["task_name"]: [v for v in json.loads(r["votes"] or "[]") if v.get("segment") != "final"]
             for r in seg["ratings"]}
    n_segments = [len(v) for v in votes.values() if v]
    mean_segments = round(sum(n_segments) / len(n_segments), 2) if n_segments else None
    whole = {r["task_name"]: r["verdict"] for r in seg["ratings"] if not r["segmented"]}
    for rule in ("any", "all", "last"):
        verdicts = {case: combine(rule, vs)[0] if vs else whole.get(case, "UNSCORED") for case, vs in votes.items()}
        rows.append(_score(f"segments, {rule} (from the same calls)", labels, verdicts, seg, mean_segments))
    rows.append(_score("segments, final", labels, {r["task_name"]: r["verdict"] for r in seg["ratings"]}, seg,
                       mean_segments))
    return {"split": args.split, "cases": len(cases), "model": args.model, "max_input_tokens": args.max_input_tokens,
            "overlap": args.overlap, "segmented_pairs": sum(1 for r in seg["ratings"] if r["segmented"]),
            "rows": rows, "errors": sorted({r["error"] for r in elide["ratings"] + seg["ratings"] if r["error"]}),
            "per_case": {c: {"reward": float(labels[c]),
                             "elide": next((r["verdict"] for r in elide["ratings"] if r["task_name"] == c), None),
                             "segments": [v["verdict"] for v in votes.get(c, [])],
                             "final": next((r["verdict"] for r in seg["ratings"] if r["task_name"] == c), None)}
                         for c in labels},
            "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("test", "tune", "all"), default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--quick", action="store_true", help="Two runs only (one solved, one not).")
    parser.add_argument("--model", default="local/qwen2.5-coder-0.5b")
    parser.add_argument("--max-input-tokens", type=int)
    parser.add_argument("--overlap", type=int, default=2)
    args = parser.parse_args(argv)
    result = run(args)
    if not args.quick:
        OUT.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "per_case"}, indent=2))
    for row in result["rows"]:
        print(" | ".join(str(row[k]) for k in ("variant", "balanced_accuracy", "tpr", "tnr", "s_per_verdict",
                                                "calls_per_pair", "segments_per_pair")), file=sys.stderr)


if __name__ == "__main__":
    main()
