"""The offline judge on labelled questions about real trajectories, through ``atif judge bench``.

Usage::

    .venv/bin/python -m bench.judge_quality.run [--cases all|library|ID,ID,...] [--quick] [--dry-run]
                                                [--model local/...] [--write]

What a user would do, done for them: the trajectories named in ``cases.yaml`` are uploaded
with ``atif.upload`` into a store (each in a folder named after its task, instructions from
``tasks:``), the labels are written as a calibrate-format JSONL file (one criterion per case:
its id), and four criteria files are written, one per variant:

- ``today``: each case's own question (the engine's current prompts for the model);
- ``today-s3``: the same with ``samples: 3`` in the judge block;
- ``library``: cases that name a built-in (``use:``) ask the built-in's question
  (``atif/judge/library/catalog.yaml``); the others keep their own;
- ``library-s3``: the same with ``samples: 3``.

Then the command itself runs, twice, as a separate process timed whole:
``atif judge bench labels.jsonl -e judge-quality --criteria today.yaml --compare today-s3.yaml
--format json`` and the same for ``library`` / ``library-s3``. Its JSON gives, per variant,
agreement (accuracy, kappa), TPR/TNR, the confusion matrix, mean latency per call, and
McNemar's test between the two configurations of each command; McNemar between ``today`` and
``library`` (and their ``-s3``) is computed from the per-case results of the same runs.

Prints the table; ``--write`` also stores ``results.json`` and the table in ``README.md``.
``--quick`` runs the four built-in cases only (a few minutes); the full set is every case.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CASES = HERE / "cases.yaml"
RESULTS = HERE / "results.json"
README = HERE / "README.md"
MODEL = "local/qwen2.5-coder-0.5b"
EXPERIMENT = "judge-quality"
VARIANTS = ("today", "today-s3", "library", "library-s3")


def load_cases(selection: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The selected cases of ``cases.yaml`` and its task table."""
    data = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    cases = list(data["cases"])
    ids = [c["id"] for c in cases]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{CASES}: duplicate case ids")
    for c in cases:
        if c.get("expected") not in ("YES", "NO"):
            raise SystemExit(f"{CASES}: case {c['id']}: expected must be YES or NO")
    if selection == "library":
        cases = [c for c in cases if c.get("use")]
    elif selection != "all":
        wanted = selection.split(",")
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise SystemExit(f"unknown case id(s): {', '.join(unknown)}")
        cases = [c for c in cases if c["id"] in wanted]
    return cases, data.get("tasks") or {}


def _task_name(trajectory: str, tasks: dict[str, Any]) -> str:
    task = tasks.get(trajectory) or {}
    if task.get("name"):
        return str(task["name"])
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", trajectory.replace("fixtures/", "")).strip("-")[-80:]


def prepare(cases: list[dict[str, Any]], tasks: dict[str, Any], work: Path, model: str) -> dict[str, Path]:
    """Write the trajectories, tasks, labels and the four criteria files; upload the trajectories."""
    import atif

    src = work / "src"
    names: dict[str, str] = {}
    task_rows = []
    for c in cases:
        traj = c["trajectory"]
        if traj in names:
            continue
        name = _task_name(traj, tasks)
        names[traj] = name
        file, _, key = traj.partition("#")
        data = json.loads((ROOT / file).read_text(encoding="utf-8"))
        if key:
            data = data[key]
        folder = src / name
        folder.mkdir(parents=True)
        (folder / "trajectory.json").write_text(json.dumps(data), encoding="utf-8")
        instruction = (tasks.get(traj) or {}).get("instruction")
        if instruction:
            task_rows.append({"name": name, "instruction": (ROOT / instruction).read_text(encoding="utf-8")})
    tasks_file = work / "tasks.jsonl"
    tasks_file.write_text("".join(json.dumps(t) + "\n" for t in task_rows), encoding="utf-8")
    db = work / "atif.duckdb"
    result = atif.upload([src], EXPERIMENT, store=db, tasks_file=tasks_file, create_missing_tasks=True)
    if not result.ok:
        raise SystemExit(f"upload failed: {result}")
    labels = work / "labels.jsonl"
    labels.write_text("".join(json.dumps({"task_name": names[c["trajectory"]], "epoch": 1, "criterion": c["id"],
                                          "rating": c["expected"]}) + "\n" for c in cases), encoding="utf-8")
    files = {"db": db, "labels": labels}
    for variant in VARIANTS:
        criteria = []
        for c in cases:
            if variant.startswith("library") and c.get("use"):
                criteria.append({"label": c["id"], "use": c["use"]})
            else:
                criteria.append({"label": c["id"], "question": c["question"]})
        judge: dict[str, Any] = {"model": model}
        if variant.endswith("-s3"):
            judge["samples"] = 3
        path = work / f"{variant}.yaml"
        path.write_text(yaml.safe_dump({"name": variant, "judge": judge, "criteria": criteria}, sort_keys=False),
                        encoding="utf-8")
        files[variant] = path
    return files


def bench(files: dict[str, Path], first: str, second: str) -> dict[str, Any]:
    """``atif judge bench`` as a user runs it: one process, timed whole."""
    cmd = [str(Path(sys.executable).parent / "atif"), "judge", "bench", str(files["labels"]), "-e", EXPERIMENT,
           "--criteria", str(files[first]), "--compare", str(files[second]), "--format", "json",
           "--db", str(files["db"])]
    load = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    # The command names a run by its model or file; the variants are named here.
    for run, name in zip(out["runs"], (first, second), strict=True):
        run["name"] = name
    out["process_seconds"] = seconds
    out["load_before"], out["load_after"] = list(load), list(os.getloadavg())
    out["command"] = " ".join(["atif", *cmd[1:]])
    (HERE / f"raw-{first}.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


def _right(run: dict[str, Any]) -> dict[str, bool]:
    """Per case (one criterion per case): judged right or not."""
    return {label: bool(s["n_correct"]) for label, s in run["criteria"].items()}


def _row(name: str, run: dict[str, Any]) -> dict[str, Any]:
    o = run["overall"]
    m = o["confusion"]
    tp, fp, fn, tn = m["YES"]["YES"], m["YES"]["NO"], m["NO"]["YES"], m["NO"]["NO"]
    pos, neg = tp + fn, tn + fp  # scored cases only; UNSCORED counts as wrong in accuracy
    return {"variant": name, "n": o["n_cases"], "accuracy": o["accuracy"], "kappa": o["kappa"],
            "tpr": tp / pos if pos else None, "tnr": tn / neg if neg else None, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "unscored": o["n_unscored"], "mean_latency_s": (run["mean_latency_ms"] or 0) / 1000,
            "calls": run["n_calls"], "run_seconds": run["seconds"]}


def score(a: dict[str, Any], b: dict[str, Any] | None) -> dict[str, Any]:
    from atif.report.stats import mcnemar_exact

    outs = [a] if b is None else [a, b]
    runs = [r for out in outs for r in out["runs"]]
    rows = {r["name"]: _row(r["name"], r) for r in runs}
    right = {r["name"]: _right(r) for r in runs}
    tests: dict[str, Any] = {f"{x} vs {y}": None for x, y in (("today", "today-s3"), ("library", "library-s3"),
                                                              ("today", "library"), ("today-s3", "library-s3"))
                             if x in right and y in right}
    for pair in tests:
        x, y = pair.split(" vs ")
        only_x = sum(1 for k in right[x] if right[x][k] and not right[y][k])
        only_y = sum(1 for k in right[x] if right[y][k] and not right[x][k])
        tests[pair] = {"only_first_right": only_x, "only_second_right": only_y, "mcnemar_p": mcnemar_exact(only_x, only_y)}
    return {"rows": [rows[v] for v in VARIANTS if v in rows], "mcnemar": tests,
            "commands": [o.get("command") for o in outs], "process_seconds": [o.get("process_seconds") for o in outs],
            "load": [[o.get("load_before"), o.get("load_after")] for o in outs],
            "problems": [p for o in outs for p in o["problems"]]}


def table(result: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.0f}%"

    lines = ["| variant | cases | accuracy | kappa | TPR | TNR | TP | FP | FN | TN | UNSCORED | s / verdict | judged |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        kappa = "–" if r["kappa"] is None else f"{r['kappa']:.2f}"
        lines.append(f"| {r['variant']} | {r['n']} | {pct(r['accuracy'])} | {kappa} | {pct(r['tpr'])} | {pct(r['tnr'])} "
                     f"| {r['tp']} | {r['fp']} | {r['fn']} | {r['tn']} | {r['unscored']} | {r['mean_latency_s']:.1f} "
                     f"| {r['calls']} |")
    lines += ["", "| McNemar (exact) | only first right | only second right | p |", "|---|---:|---:|---:|"]
    for pair, t in result["mcnemar"].items():
        lines.append(f"| {pair} | {t['only_first_right']} | {t['only_second_right']} | {t['mcnemar_p']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="all", help="all, library (the cases naming a built-in), or ids.")
    parser.add_argument("--quick", action="store_true", help="The cases naming a built-in only.")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--dry-run", action="store_true", help="Write the files and upload; judge nothing.")
    parser.add_argument("--write", action="store_true", help="Store results.json and the README table.")
    parser.add_argument("--today-only", action="store_true", help="Only today / today-s3 (one command).")
    parser.add_argument("--from-raw", action="store_true",
                        help="Score the commands' saved outputs (raw-today.json, raw-library.json) again.")
    args = parser.parse_args(argv)
    cases, tasks = load_cases("library" if args.quick else args.cases)
    if args.from_raw:
        saved = [json.loads((HERE / f"raw-{n}.json").read_text(encoding="utf-8"))
                 for n in ("today", "library") if (HERE / f"raw-{n}.json").exists()]
        return _finish(args, cases, saved[0], saved[1] if len(saved) > 1 else None)
    with tempfile.TemporaryDirectory(prefix="atif-judge-quality-") as tmp:
        files = prepare(cases, tasks, Path(tmp), args.model)
        if args.dry_run:
            print(f"{len(cases)} cases uploaded; criteria files: {', '.join(VARIANTS)}")
            return 0
        first = bench(files, "today", "today-s3")
        second = None if args.today_only else bench(files, "library", "library-s3")
    return _finish(args, cases, first, second)


def _finish(args: argparse.Namespace, cases: list[dict[str, Any]], first: dict[str, Any],
            second: dict[str, Any] | None) -> int:
    result = {"cases": [c["id"] for c in cases], "model": args.model, **score(first, second),
              "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpus": os.cpu_count()}
    text = table(result)
    print(text)
    print(json.dumps({k: result[k] for k in ("commands", "process_seconds", "load", "problems")}, indent=2))
    if args.write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        readme = README.read_text(encoding="utf-8")
        start, end = "<!-- results:start -->\n", "<!-- results:end -->"
        head, _, rest = readme.partition(start)
        _, _, tail = rest.partition(end)
        README.write_text(head + start + text + end + tail, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
