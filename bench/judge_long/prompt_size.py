"""How many prompt tokens the small-model judge sends per labelled run, per transcript style.

Usage::

    .venv/bin/python -m bench.judge_long.prompt_size [--split tune|test|all] [--batch 1|2|all]
                                                     [--style compact] [--style lean] [--quick]

Builds each run's first-criterion prompt exactly as the judge does (``JudgeSetup.messages`` over
the style's views, fitted into the default 3,072-token budget by ``atif.judge.fit``) and counts
it with the served model's own template and tokenizer (a llama.cpp server of the default local
model is started for counting only; nothing is generated). Reading the prompt is where a CPU
judge spends its time (the first criterion of a run costs the whole prompt), so the mean token
count is the cost of judging a run. Prints, per style: mean/min/max prompt tokens, how many runs
had to be cut further by the fit, and the ratio to the first style. Full size: all 40 runs;
``--quick``: the first 4.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.judge_long.run import QUESTION, _cases, prepare


def _contexts(cases: list[dict[str, Any]], work: Path) -> list[Any]:
    from atif.judge.context import trial_context

    outs, _ = prepare(cases, work)
    contexts = []
    for case, out in zip(sorted(cases, key=lambda c: c["case"]), outs, strict=True):
        files = sorted(out.rglob("*.json"))
        trajectory = next(json.loads(f.read_text(encoding="utf-8")) for f in files
                          if "steps" in json.loads(f.read_text(encoding="utf-8")))
        contexts.append(trial_context({"trial_id": case["case"], "task_name": case["case"], "trajectory": trajectory,
                                       "task": {"name": case["case"], "instruction": case["instruction"]}}))
    return contexts


def measure(styles: list[str], cases: list[dict[str, Any]], max_input_tokens: int | None = None,
            reads_first: bool = False) -> dict[str, Any]:
    from atif.judge import local, transcript
    from atif.judge.criteria import JudgeConfig
    from atif.judge.fit import READS_FIRST, STAGES, fit
    from atif.judge.setup import build_setup

    work = Path(tempfile.mkdtemp(prefix="atif-prompt-size-"))
    criterion = {"label": "resolved", "question": QUESTION}
    stages = READS_FIRST if reads_first else STAGES
    out: dict[str, Any] = {}
    try:
        contexts = _contexts(cases, work)
        with local.LocalServer(local.DEFAULT_LOCAL_MODEL) as server:
            setup = build_setup(JudgeConfig(model=local.LOCAL_PREFIX + local.DEFAULT_LOCAL_MODEL,
                                            max_input_tokens=max_input_tokens), count=server.count_tokens)
            assert setup.shape == "small", setup.shape
            for style in styles:
                tokens, raw, cut = [], [], 0
                for ctx in contexts:
                    views = transcript.compact_views(ctx.views, ctx.frame_id, style=style)
                    raw.append(server.count_tokens(setup.messages(ctx, criterion, views)))
                    fitted = fit(views, lambda v, ctx=ctx: setup.messages(ctx, criterion, v), server.count_tokens,
                                 setup.budget, frame_id=ctx.frame_id, stages=stages)
                    tokens.append(fitted.tokens or server.count_tokens(fitted.messages))
                    cut += fitted.truncated
                out[style] = {"mean": round(statistics.fmean(tokens)), "min": min(tokens), "max": max(tokens),
                              "unfitted_mean": round(statistics.fmean(raw)), "cut_by_fit": cut, "runs": len(tokens)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = out[styles[0]]["mean"]
    for style in styles:
        out[style]["ratio_to_" + styles[0]] = round(out[style]["mean"] / first, 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tune", "test", "all"), default="all")
    parser.add_argument("--batch", choices=("1", "2", "all"), default="all")
    parser.add_argument("--style", action="append", help="Transcript style (repeatable); default: compact and lean.")
    parser.add_argument("--quick", action="store_true", help="The first 4 runs only.")
    parser.add_argument("--max-input-tokens", type=int, help="The judge's input budget (default: atif's, 3,072).")
    parser.add_argument("--reads-first", action="store_true", help="Fit with atif.judge.fit.READS_FIRST.")
    args = parser.parse_args(argv)
    cases = _cases(args.split, 4 if args.quick else None, batch=args.batch)
    started = time.perf_counter()
    result = measure(args.style or ["compact", "lean"], cases, args.max_input_tokens, args.reads_first)
    print(json.dumps({"runs": len(cases), "max_input_tokens": args.max_input_tokens, "reads_first": args.reads_first,
                      "styles": result, "seconds": round(time.perf_counter() - started, 1)},
                     indent=2), file=sys.stdout)


if __name__ == "__main__":
    main()
