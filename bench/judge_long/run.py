"""The offline judge on long real agent runs: accuracy against the environment's reward, and speed.

Usage::

    .venv/bin/python -m bench.judge_long.run [--split test|tune|all] [--limit N] [--name NAME]
                                             [--model local/...] [--max-input-tokens N] [--threshold P]
                                             [--no-further] [--fit-from NAME]

Takes the labelled tau-bench airline runs of ``fixtures/long/`` (see ``fixtures/README.md``),
converts and stores them with atif's public API, and judges them with ``atif.evaluate`` exactly
as ``atif upload --evaluate`` does: one local llama.cpp server, the criteria of one trial back
to back. The first criterion is the labelled one ("resolved per policy"); the second is asked
only to time a further criterion on a transcript already in the server's cache.

Prints, and merges into ``results.json`` under ``--name``: balanced accuracy, TPR, TNR (YES is
the positive class, reward 1.0 the truth), the mean ``p_yes`` of each class, seconds per
verdict (first and further criterion), calls per pair, prompt tokens, and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.judge_long.build_fixtures import messages

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIXTURES = ROOT / "fixtures" / "long"
RESULTS = HERE / "results.json"
MEASURED = ROOT / "atif" / "judge" / "measured.json"
"""What ``atif judge models`` shows per model; ``--record`` writes this run's figures there."""

RESOLVED = "resolved"
QUESTION = ("Did the agent fully resolve the user's request while following the airline policy "
            "(right actions, explicit confirmation before changes, nothing the policy forbids)?")
FURTHER = ("confirmed",
           "Before changing any booking, did the agent list the details and get the user's explicit confirmation?")
PROBES = {
    # The same judgement asked the other way round: a model that says YES to everything says YES
    # here too, so p_yes(resolved) against p_yes(failed) cancels the transcript's pull towards YES.
    "failed": ("Did the agent fail the user's request or break the airline policy (a wrong or missing action, "
               "a change made without the user's explicit confirmation, something the policy forbids)?"),
    # A question with no bearing on success: how much this transcript pulls the model towards YES.
    "baseline": "Did the agent answer the user in English?",
}


def _cases(split: str, limit: int | None, names: list[str] | None = None, batch: str = "all") -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (FIXTURES / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if (split == "all" or r["split"] == split) and (not names or r["case"] in names)
            and (batch == "all" or str(r.get("batch", 1)) == batch)]
    if limit:
        # Keep the classes balanced when cutting.
        yes = [r for r in rows if r["reward"] >= 1.0][: (limit + 1) // 2]
        no = [r for r in rows if r["reward"] < 1.0][: limit // 2]
        rows = yes + no
    return rows


def roc_auc(scored: list[tuple[float, bool]]) -> float | None:
    """Area under the ROC curve: the share of (solved, failed) pairs the score orders right (ties count half)."""
    pos = [s for s, y in scored if y]
    neg = [s for s, y in scored if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 3)


def _metrics(labels: dict[str, bool], verdicts: dict[str, str]) -> dict[str, Any]:
    tp = sum(1 for c, y in labels.items() if y and verdicts.get(c) == "YES")
    fn = sum(1 for c, y in labels.items() if y and verdicts.get(c) == "NO")
    tn = sum(1 for c, y in labels.items() if not y and verdicts.get(c) == "NO")
    fp = sum(1 for c, y in labels.items() if not y and verdicts.get(c) == "YES")
    tpr = tp / (tp + fn) if tp + fn else None
    tnr = tn / (tn + fp) if tn + fp else None
    ba = (tpr + tnr) / 2 if tpr is not None and tnr is not None else None
    unscored = sum(1 for c in labels if verdicts.get(c) not in ("YES", "NO"))
    return {"balanced_accuracy": ba, "tpr": tpr, "tnr": tnr, "tp": tp, "fn": fn, "tn": tn, "fp": fp,
            "unscored": unscored}


def prepare(cases: list[dict[str, Any]], work: Path) -> tuple[list[Path], Path]:
    """Convert each case's run into ``work`` with the case as its task name, so the judge sees the
    task's instruction from the tasks file written beside (the converter names a task after the
    file otherwise); the converted folders to upload and the tasks file."""
    from atif import convert

    tasks = work / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"name": c["case"], "instruction": c["instruction"]}) + "\n"
                             for c in cases), encoding="utf-8")
    outs = []
    for case in cases:
        raw = work / "raw" / case["case"]
        raw.mkdir(parents=True)
        (raw / "run.json").write_text(json.dumps(messages(case["case"])) + "\n", encoding="utf-8")
        converted = convert([raw / "run.json"], work / "out" / case["case"], task=case["case"])
        if converted.failures:
            raise SystemExit(f"conversion failed: {converted.failures}")
        outs.append(work / "out" / case["case"])
    return sorted(outs), tasks


ANSWER_FIRST_GRAMMAR = (
    'root ::= "Answer: " verdict "\\nReasoning: " reason\n'
    "reason ::= [^\\n]{1,120}\n"
    'verdict ::= "YES" | "NO"\n'
)
"""The small-model grammar with the verdict first: p_yes is read before the model writes a reason."""


def _answer_first() -> None:
    """Ask small models for the verdict before the reason (``--answer-first``), and read p_yes at
    the first ``Answer:`` (a reason may itself say "answer")."""
    import re

    from atif.judge import score, setup, verdict

    setup.SMALL_MODEL_GRAMMAR = ANSWER_FIRST_GRAMMAR
    score._ANSWER = re.compile(r"\A\s*Answer:\s*")
    shape = re.compile(r"\A\s*Answer: (YES|NO)\s*\nReasoning: (.*)\Z", re.DOTALL)
    last_line = verdict._from_last_line

    def first_line(text: str) -> verdict.Verdict | None:
        m = shape.match(text)
        if m is None:
            return last_line(text)
        return verdict.Verdict(rating=m.group(1), reasoning=m.group(2).strip() or None, raw=text,  # type: ignore[arg-type]
                               how="line")

    verdict._from_last_line = first_line


def _answer_first_templates(work: Path) -> dict[str, str]:
    """The shipped small-model prompts with the reply's two lines swapped."""
    from importlib import resources

    out = {}
    for role in ("system", "user"):
        text = resources.files("atif.judge").joinpath("prompts", f"{role}_small.hbs").read_text(encoding="utf-8")
        swapped = (text.replace('Reply with one line starting "Reasoning:" and then one line that is exactly '
                                '"Answer: YES" or "Answer: NO".',
                                'Reply with one line that is exactly "Answer: YES" or "Answer: NO", and then one line '
                                'starting "Reasoning:".')
                   .replace('Reply with "Reasoning: ..." on one line, then "Answer: YES" or "Answer: NO".',
                            'Reply with "Answer: YES" or "Answer: NO" on one line, then "Reasoning: ...".'))
        if swapped == text:
            raise SystemExit(f"--answer-first: prompts/{role}_small.hbs no longer has the reply line this swaps")
        path = work / f"{role}_answer_first.hbs"
        path.write_text(swapped, encoding="utf-8")
        out[role] = str(path)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from atif import Store, evaluate, upload
    from atif.judge import transcript

    if args.transcript:
        transcript.DEFAULT_STYLE = args.transcript
    if args.answer_first:
        _answer_first()
    if args.reads_first:
        from atif.judge import fit

        fit.STAGES = fit.READS_FIRST
    cases = _cases(args.split, args.limit, args.case, args.batch)
    work = Path(tempfile.mkdtemp(prefix="atif-judge-long-"))
    try:
        outs, tasks = prepare(cases, work)
        criteria: dict[str, Any] = {"name": "long", "judge": {"model": args.model}, "criteria": [
            {"label": RESOLVED, "question": QUESTION, "kind": "llm",
             "config": {"threshold": args.threshold} if args.threshold is not None else {}},
        ]}
        if args.further:
            criteria["criteria"].append({"label": FURTHER[0], "question": FURTHER[1], "kind": "llm", "config": {}})
        if args.probes:
            criteria["criteria"] += [{"label": label, "question": q, "kind": "llm", "config": {}}
                                     for label, q in PROBES.items()]
        if args.max_input_tokens:
            criteria["judge"]["max_input_tokens"] = args.max_input_tokens
        if args.answer_first:
            criteria["judge"]["templates"] = _answer_first_templates(work)
        load_before = os.getloadavg()
        with Store(work / "atif.duckdb") as store:
            if args.keep_store:
                print(f"store: {work / 'atif.duckdb'}", file=sys.stderr)
            upload(outs, "long", store=store, criteria=criteria, tasks_file=tasks, create_missing_tasks=True)
            started = time.perf_counter()
            summary = evaluate(store, "long", on_progress=lambda p: print(
                f"{time.strftime('%H:%M:%S')} {p.stage} {p.done}/{p.total} {p.detail}", file=sys.stderr, flush=True))
            seconds = time.perf_counter() - started
            # select *: the code before p_yes existed is measured with this script too.
            cols, rows = store.query("select * from ratings order by task_name, criterion")
            named = {r[0] for r in store.query("select distinct task_name from trials")[1]}
        if named != {c["case"] for c in cases}:
            raise SystemExit(f"the trials' task names {sorted(named)} are not the cases: the judge saw no instruction")
        load_after = os.getloadavg()
    finally:
        if not args.keep_store:
            shutil.rmtree(work, ignore_errors=True)
    ratings = [{"p_yes": None, **dict(zip(cols, r, strict=True))} for r in rows]
    labels = {c["case"]: c["reward"] >= 1.0 for c in cases}
    main = {r["task_name"]: r for r in ratings if r["criterion"] == RESOLVED}
    verdicts = {case: r["verdict"] for case, r in main.items()}
    first = [r["latency_ms"] / 1000 for r in main.values() if r["latency_ms"] is not None]
    further = [r["latency_ms"] / 1000 for r in ratings if r["criterion"] != RESOLVED and r["latency_ms"] is not None]

    def mean(xs: list[float]) -> float | None:
        return round(statistics.fmean(xs), 1) if xs else None

    def p_mean(solved: bool) -> float | None:
        ps = [main[c]["p_yes"] for c, y in labels.items() if y == solved and c in main and main[c]["p_yes"] is not None]
        return round(statistics.fmean(ps), 3) if ps else None

    result = {
        "split": args.split, "batch": args.batch, "transcript": transcript.DEFAULT_STYLE,
        "reads_first": args.reads_first, "max_input_tokens": args.max_input_tokens,
        "cases": len(cases), "model": args.model, "threshold": args.threshold,
        **_metrics(labels, verdicts),
        "mean_p_yes_solved": p_mean(True), "mean_p_yes_failed": p_mean(False),
        "s_per_verdict_first": mean(first), "s_per_verdict_further": mean(further),
        "seconds_total": round(seconds, 1), "calls_per_pair": round(summary.calls / max(1, len(ratings)), 2),
        "prompt_tokens_mean": mean([float(r["prompt_tokens"]) for r in main.values() if r["prompt_tokens"]]),
        "errors": sorted({r["error"] for r in ratings if r["error"]}),
        "per_case": {c: {"reward": float(labels[c]), "verdict": main[c]["verdict"] if c in main else None,
                         "p_yes": main[c]["p_yes"] if c in main else None,
                         "first_s": main[c]["latency_ms"] / 1000 if c in main and main[c]["latency_ms"] else None,
                         "further_s": [r["latency_ms"] / 1000 for r in ratings if r["task_name"] == c
                                       and r["criterion"] != RESOLVED and r["latency_ms"]],
                         "prompt_tokens": main[c]["prompt_tokens"] if c in main else None,
                         **{f"p_yes_{r['criterion']}": r["p_yes"] for r in ratings
                            if r["task_name"] == c and r["criterion"] != RESOLVED}} for c in labels},
        "roc_auc": roc_auc([(main[c]["p_yes"], labels[c]) for c in labels
                            if c in main and main[c]["p_yes"] is not None]),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(), "machine": platform.machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    if args.fit_from:
        result.update(_fitted(args.fit_from, labels, result["per_case"]))
    return result


def _fitted(source: str, labels: dict[str, bool], per_case: dict[str, Any]) -> dict[str, Any]:
    """The threshold fitted on an earlier run (the tune split), applied to this run's p_yes."""
    from atif.judge.score import decide, fit_threshold

    earlier = json.loads(RESULTS.read_text(encoding="utf-8"))[source]["per_case"]
    scored = [(c["p_yes"], c["reward"] >= 1.0) for c in earlier.values() if c["p_yes"] is not None]
    threshold = fit_threshold(scored)
    verdicts = {case: decide(row["p_yes"], row["verdict"] or "UNSCORED", threshold) for case, row in per_case.items()}
    return {"fitted_on": source, "fitted_threshold": threshold,
            "fitted": _metrics(labels, verdicts)}


def record(result: dict[str, Any], metrics: dict[str, Any], *, score: str, threshold: str, command: str) -> None:
    """Write one model's held-out figures, timings, date and load into ``atif/judge/measured.json``."""
    name = str(result["model"]).removeprefix("local/")
    stored = json.loads(MEASURED.read_text(encoding="utf-8")) if MEASURED.exists() else {}
    stored[name] = {
        "balanced_accuracy": metrics["balanced_accuracy"], "tpr": metrics["tpr"], "tnr": metrics["tnr"],
        "roc_auc": metrics.get("roc_auc"), "cases": metrics.get("n", result["cases"]), "split": "test",
        "score": score, "threshold": threshold,
        "s_first": result["s_per_verdict_first"], "s_further": result["s_per_verdict_further"],
        "calls_per_pair": result["calls_per_pair"], "load": max(result["load_before"][0], result["load_after"][0]),
        "cpus": result["cpus"], "when": result["when"], "command": command,
        "transcript": result.get("transcript") or "compact", "max_input_tokens": result.get("max_input_tokens"),
    }
    MEASURED.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("test", "tune", "all"), default="test")
    parser.add_argument("--batch", choices=("1", "2", "all"), default="all",
                        help="Batch 1: the first 20 runs (10 per split), as in the first figures; all: 40 (20 per split).")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--keep-store", action="store_true", help="Print the scratch store's path and keep it.")
    parser.add_argument("--case", action="append", help="Only this case (repeatable), e.g. airline-t33-r0.")
    parser.add_argument("--quick", action="store_true",
                        help="One test case: a smoke run of the whole path for `make bench` (no accuracy).")
    parser.add_argument("--name", default="current")
    parser.add_argument("--model", default="local/qwen2.5-coder-0.5b")
    parser.add_argument("--max-input-tokens", type=int)
    parser.add_argument("--transcript", choices=("compact", "lean"),
                        help="Transcript style of the small-model prompt (atif.judge.transcript); default: atif's.")
    parser.add_argument("--reads-first", action="store_true",
                        help="Fit by dropping read-only tool steps before the middle of the run (atif.judge.fit.READS_FIRST).")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--no-further", dest="further", action="store_false")
    parser.add_argument("--probes", action="store_true",
                        help="Also ask the negated question and a baseline question (see bench/judge_long/scores.py).")
    parser.add_argument("--answer-first", action="store_true",
                        help="Small models write the verdict before the reason, so p_yes is read before any reasoning.")
    parser.add_argument("--fit-from", metavar="NAME", help="Apply the threshold fitted on run NAME's p_yes.")
    parser.add_argument("--record", action="store_true",
                        help="Write this run's test figures (fitted with --fit-from) for `atif judge models`.")
    args = parser.parse_args(argv)
    if args.quick:
        args.split, args.limit = "test", 1
    result = run(args)
    if args.record:
        fitted = result.get("fitted") or _metrics({}, {})
        figures = {**(fitted if args.fit_from else result), "roc_auc": result["roc_auc"], "n": result["cases"]}
        record(result, figures, score="p_yes",
               threshold=f"fitted on tune ({result['fitted_threshold']})" if args.fit_from else "0.5",
               command="python -m bench.judge_long.run " + " ".join(argv if argv is not None else sys.argv[1:]))
    result["command"] = "python -m bench.judge_long.run " + " ".join(argv if argv is not None else sys.argv[1:])
    stored = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    stored[args.name] = result
    RESULTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shown = {k: v for k, v in result.items() if k != "per_case"}
    print(json.dumps(shown, indent=2), file=sys.stdout)


if __name__ == "__main__":
    main()
