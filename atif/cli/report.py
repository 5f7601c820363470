"""``atif report``, ``compare``, ``gate``, ``calibrate``, ``export`` and ``view``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from atif.cli._common import db_option, emit_json, json_text, open_store

_OUTPUT = click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                       help="Write to this file instead of stdout.")


def _write(text: str, output: str | None) -> None:
    if output:
        data = text.encode("utf-8")
        Path(output).write_bytes(data)
        click.echo(f"wrote {output} ({len(data):,} bytes)", err=True)
    else:
        sys.stdout.write(text)


_CALIBRATION = click.option(
    "--calibration", metavar="EXPERIMENT|FILE",
    help="Calibration data: an experiment or JSONL file of reference ratings (as calibrate takes), "
         "or a saved `atif calibrate --format json` result.")
_AGAINST = click.option("--against", type=click.Choice(["human", "precomputed"]), default="human",
                        show_default=True, help="With --calibration: the source of the reference ratings.")


@click.command("report")
@click.option("--experiment", "-e", required=True, help="Experiment to summarise.")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True)
@_OUTPUT
@click.option("--by", type=click.Choice(["tag", "agent", "model"]), default=None,
              help="Add a section per cohort: task tag, agent or model.")
@click.option("--max-trials", type=click.IntRange(min=1), default=1000, show_default=True,
              help="HTML: trials in the table and viewer (errored and lowest-reward first).")
@_CALIBRATION
@_AGAINST
@db_option
def report_cmd(experiment: str, fmt: str, output: str | None, by: str | None, max_trials: int,
               calibration: str | None, against: str, db_path: str) -> None:
    """Summarise an experiment: errors, rewards, cost, tokens, pass rates with 95% intervals.

    Markdown suits a pull-request comment; JSON is stable and versioned (schema_version,
    see docs/reports.md); HTML is one self-contained file with charts, a sortable,
    filterable trial table and a trajectory viewer.

    \b
    Example:
      atif report --experiment nightly
      atif report -e nightly --by tag --format json -o report.json
      atif report -e nightly --format html -o report.html
      atif report -e nightly --calibration labels.jsonl    # adds pass rates corrected for the judge's error
    """
    from atif import build_report, load_calibration, render_report_html, render_report_md

    if fmt == "html" and output is None and sys.stdout.isatty():
        raise click.UsageError("--format html writes a whole page: give -o FILE (or redirect stdout)")
    with open_store(db_path, read_only=True) as store:
        cal = load_calibration(store, experiment, calibration, against=against) if calibration else None
        rep = build_report(store, experiment, by=by, calibration=cal)
        if fmt == "json":
            text = json_text(rep, sort_keys=True)
        elif fmt == "md":
            text = render_report_md(rep)
        else:
            text = render_report_html(store, experiment, by=by, max_trials=max_trials, report=rep)
    _write(text, output)


@click.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@_OUTPUT
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level of the tests and 1 - coverage of the intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap (reproducible).")
@click.option("--max-listed", type=click.IntRange(0), default=100, show_default=True, metavar="N",
              help="JSON: list the first N changed pairs of each kind and N unpaired trials of each side "
                   "(task_counts and unpaired_counts give the totals).")
@click.option("--all-pairs", is_flag=True,
              help="JSON: list every changed pair and unpaired trial, written as they are read.")
@db_option
def compare_cmd(baseline: str, candidate: str, fmt: str, output: str | None, alpha: float, seed: int,
                max_listed: int, all_pairs: bool, db_path: str) -> None:
    """Compare two experiments on trials paired by task and epoch, with significance.

    Per criterion: pass-rate change and McNemar's exact test on the discordant pairs.
    Reward, cost and duration: mean change with a seeded paired bootstrap interval.
    Regressed and improved tasks are listed (the first 30 of each kind in Markdown, --max-listed
    in JSON, or all with --all-pairs); unpaired trials are reported.

    \b
    Example:
      atif compare nightly-main nightly-pr-123
      atif compare nightly-main nightly-pr-123 --format json -o compare.json
      atif compare nightly-main nightly-pr-123 --format json --all-pairs -o every-pair.json
    """
    from atif import compare, render_compare_md

    if all_pairs and fmt != "json":
        raise click.UsageError("--all-pairs lists every pair in JSON; add --format json")
    with open_store(db_path, read_only=True) as store:
        if all_pairs:
            _stream_compare_json(store, baseline, candidate, alpha, seed, output)
            return
        # Markdown shows 30 pairs of each kind and the totals: no need to hold more.
        result = compare(store, baseline, candidate, alpha=alpha, seed=seed,
                         max_listed=max_listed if fmt == "json" else 30)
    _write(json_text(result, sort_keys=True) if fmt == "json" else render_compare_md(result), output)


def _stream_compare_json(store: Any, baseline: str, candidate: str, alpha: float, seed: int,
                         output: str | None) -> None:
    """Write ``compare``'s sorted-key JSON with every pair listed, the lists written as they are read.

    The text is the same as ``json_text(compare(..., max_listed=None), sort_keys=True)``; only one
    batch of pairs is held at a time.
    """
    import orjson

    from atif import compare, iter_compare_lists

    head = compare(store, baseline, candidate, alpha=alpha, seed=seed, max_listed=0)
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

    def dump(value: Any, depth: int) -> str:
        return orjson.dumps(value, option=option, default=str).decode().replace("\n", "\n" + "  " * depth)

    lists = {"tasks": sorted(head["tasks"]), "unpaired": sorted(head["unpaired"])}
    out = open(output, "w", encoding="utf-8") if output else None  # noqa: SIM115 - closed below
    try:
        write = (out or sys.stdout).write
        keys = sorted(head)
        write("{\n")
        entries = iter_compare_lists(store, baseline, candidate)
        pending = next(entries, None)
        for i, key in enumerate(keys):
            write(f"  {dump(key, 0)}: ")
            if key in lists:
                write("{\n")
                for j, kind in enumerate(lists[key]):
                    write(f"    {dump(kind, 0)}: [")
                    n = 0
                    while pending is not None and pending[0] == key and pending[1] == kind:
                        write(("," if n else "") + "\n      " + dump(pending[2], 3))
                        n += 1
                        pending = next(entries, None)
                    write(("\n    ]" if n else "]") + ("," if j < len(lists[key]) - 1 else "") + "\n")
                write("  }")
            else:
                write(dump(head[key], 1))
            write(",\n" if i < len(keys) - 1 else "\n")
        write("}\n")
    finally:
        if out is not None:
            out.close()
    if output:
        click.echo(f"wrote {output} ({Path(output).stat().st_size:,} bytes)", err=True)


@click.command("gate")
@click.option("--experiment", "-e", required=True, help="Experiment to check.")
@click.option("--min-pass", "min_pass", multiple=True, metavar="CRITERION=RATE",
              help="Minimum pass rate of a criterion ('*' for each); repeatable.")
@click.option("--min-reward", type=float, default=None, help="Minimum mean reward.")
@click.option("--baseline", default=None, help="Fail on a significant regression against this experiment.")
@click.option("--max-regression", type=float, default=None,
              help="Largest tolerated drop in pass rate / mean reward vs --baseline (default 0.05).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level of regression tests.")
@click.option("--ignore-unscored", is_flag=True, help="Leave unscored and unrated verdicts out instead of failing them.")
@_CALIBRATION
@_AGAINST
@click.option("--corrected", is_flag=True,
              help="--min-pass holds the pass rate corrected for the judge's measured error (needs --calibration).")
@click.option("--min-kappa", type=float, default=None, metavar="K",
              help="Each calibrated criterion needs the judge's Cohen's kappa >= K (needs --calibration).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None, metavar="A",
              help="Each criterion judged by samples or a panel needs a mean vote agreement >= A.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@db_option
@click.pass_context
def gate_cmd(ctx: click.Context, experiment: str, min_pass: tuple[str, ...], min_reward: float | None,
             baseline: str | None, max_regression: float | None, alpha: float, ignore_unscored: bool,
             calibration: str | None, against: str, corrected: bool, min_kappa: float | None,
             min_agreement: float | None, fmt: str, db_path: str) -> None:
    """Exit 1 when an experiment misses a threshold or regresses significantly (for CI).

    Every condition is printed with its figure. Unscored and unrated verdicts count as
    failures unless --ignore-unscored. A regression against --baseline fails only when it
    is larger than --max-regression and significant at --alpha (McNemar exact test for
    pass rates, paired bootstrap for reward).
    Exit status: 0 every condition holds, 1 any fails, 2 usage error.

    \b
    Example:
      atif gate -e nightly-pr-123 --min-pass correct=0.8 --min-pass '*=0.5'
      atif gate -e nightly-pr-123 --baseline nightly-main --max-regression 0.05
      atif gate -e nightly --calibration labels.jsonl --min-kappa 0.6 --corrected --min-pass done=0.7
    """
    from atif import ReportError, gate, load_calibration, parse_min_pass, render_gate_text

    if max_regression is not None and baseline is None:
        raise click.UsageError("--max-regression needs --baseline")
    thresholds: dict[str, float] = {}
    try:
        for spec in min_pass:
            label, rate = parse_min_pass(spec)
            thresholds[label] = rate
    except ReportError as exc:
        raise click.UsageError(str(exc)) from None
    if (corrected or min_kappa is not None) and not calibration:
        raise click.UsageError("--corrected and --min-kappa need --calibration")
    with open_store(db_path, read_only=True) as store:
        cal = load_calibration(store, experiment, calibration, against=against) if calibration else None
        try:
            result = gate(store, experiment, min_pass=thresholds, min_reward=min_reward, baseline=baseline,
                          max_regression=0.05 if max_regression is None else max_regression, alpha=alpha,
                          ignore_unscored=ignore_unscored, calibration=cal, min_kappa=min_kappa,
                          corrected=corrected, min_agreement=min_agreement)
        except ReportError as exc:
            raise click.UsageError(str(exc)) from None
    if fmt == "json":
        emit_json(result.to_dict())
    else:
        click.echo(render_gate_text(result), nl=False)
    if not result.passed:
        ctx.exit(1)


@click.command("calibrate")
@click.option("--experiment", "-e", required=True, help="Experiment whose judge ratings are checked.")
@click.option("--against", type=click.Choice(["human", "precomputed"]), default="human", show_default=True,
              help="Source of the reference ratings.")
@click.option("--reference", "-r", default=None, metavar="EXPERIMENT|FILE.jsonl",
              help="Experiment holding the reference ratings (paired by task and epoch), or a JSONL file of "
                   "{task_name, epoch, criterion, rating}. Default: the experiment's own labels, each compared "
                   "with the judge verdict it replaced.")
@click.option("--fit-threshold", "fit", is_flag=True,
              help="Fit each criterion's p_yes threshold on these labels (balancing TPR and TNR) and store it "
                   "with the criterion set: the next `atif evaluate` uses it unless the criteria file sets "
                   "`threshold:` itself.")
@click.option("--apply", is_flag=True,
              help="With --fit-threshold: re-decide the experiment's stored judge verdicts that carry a p_yes "
                   "with the threshold now in force (replaced verdicts stay in the rating history).")
@click.option("--write-criteria", type=click.Path(dir_okay=False, exists=True), default=None, metavar="FILE",
              help="With --fit-threshold: also write the fitted thresholds into this criteria file (YAML layout "
                   "and comments are kept).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@_OUTPUT
@db_option
def calibrate_cmd(
    experiment: str, against: str, reference: str | None, fit: bool, apply: bool, write_criteria: str | None,
    fmt: str, output: str | None, db_path: str
) -> None:
    """Agreement of the judge with human or pre-computed ratings: Cohen's kappa, confusion matrix.

    The reference ratings are the experiment's own labels (e.g. from `atif serve`'s review
    queue: each is compared with the judge verdict it replaced), another experiment over the
    same tasks (paired by task and epoch), or a JSONL file. Disagreeing trials are listed.

    With --fit-threshold, the same labels fit the threshold on the judge's p_yes score per
    criterion (see docs/judging.md, "Offline judge"); --apply re-decides the stored verdicts.

    \b
    Example:
      atif calibrate -e nightly --against human
      atif calibrate -e nightly --against human --reference nightly-human-labels
      atif calibrate -e nightly --against human --reference labels.jsonl --format json
      atif calibrate -e nightly --reference labels.jsonl --fit-threshold --apply --write-criteria criteria.yaml
    """
    from atif import calibrate, fit_thresholds, render_calibration_md, write_thresholds

    if (apply or write_criteria) and not fit:
        raise click.UsageError("--apply and --write-criteria go with --fit-threshold")
    ref_path = Path(reference) if reference is not None else None
    is_file = ref_path is not None and (ref_path.suffix.lower() in (".jsonl", ".json", ".ndjson") or ref_path.is_file())
    refs = {"reference": None if is_file else reference, "reference_file": ref_path if is_file else None}
    fitted = None
    with open_store(db_path, read_only=not fit) as store:
        if fit:
            fitted = fit_thresholds(store, experiment, against=against, apply=apply, **refs)
            if write_criteria:
                write_thresholds(write_criteria, {label: c["threshold"] for label, c in fitted["criteria"].items()})
                fitted["written"] = write_criteria
        # After --apply this is the agreement of the re-decided verdicts.
        result = calibrate(store, experiment, against=against, **refs)
    if fitted is not None:
        result["thresholds"] = fitted
    _write(json_text(result, sort_keys=True) if fmt == "json" else render_calibration_md(result), output)
    if fitted is not None:
        for problem in fitted["problems"]:
            click.echo(f"Error: {problem}", err=True)
        if fitted["problems"]:
            click.get_current_context().exit(1)


@click.command("export")
@click.option("--experiment", "-e", required=True, help="Experiment to export.")
@click.option("--kind", type=click.Choice(["metric", "preference", "completion", "prompt", "views"]), default=None,
              help="metric: verdicts and rewards per trial; preference: best vs worst trial per task; "
                   "completion: chat messages; prompt: messages up to the last agent turn; views: the store's "
                   "views as partitioned Parquet (the default with --format parquet).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default=None,
              help="jsonl (default) or parquet.")
@click.option("-o", "--output", type=click.Path(), required=True, help="Output file (a folder for --kind views).")
@db_option
def export_cmd(experiment: str, kind: str | None, fmt: str | None, output: str, db_path: str) -> None:
    """Export an experiment as a dataset (JSONL or Parquet) for training or analysis.

    \b
    Example:
      atif export -e nightly --kind metric --format parquet -o nightly-metrics.parquet
      atif export -e nightly --kind preference -o prefs.jsonl
      atif export -e nightly --format parquet -o warehouse/   # the SQL views, partitioned by experiment
    """
    from atif import export_dataset

    if kind is None:
        if fmt != "parquet":
            raise click.UsageError("choose --kind (metric, preference, completion, prompt or views)")
        kind = "views"  # `atif export -e X --format parquet -o DIR`: the views, for a warehouse
    fmt = fmt or ("parquet" if kind == "views" else "jsonl")
    if kind == "views" and fmt != "parquet":
        raise click.UsageError("--kind views is written as Parquet: add --format parquet")
    with open_store(db_path, read_only=True) as store:
        result = export_dataset(store, experiment, kind, fmt, output)
    skipped = ", ".join(f"{n:,} {why}" for why, n in sorted(result["skipped"].items()))
    what = f"{result['rows']:,} rows" if result["rows"] is not None else f"{len(result.get('files', [])):,} files"
    click.echo(f"wrote {what} ({kind}, {fmt}) to {output}" + (f"; skipped: {skipped}" if skipped else ""))


@click.command("view")
@click.argument("trial_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: trial-<id>.html).")
@db_option
def view_cmd(trial_id: str, output: str | None, db_path: str) -> None:
    """Write a self-contained HTML viewer of one trial: steps beside the criteria verdicts.

    TRIAL_ID may be a unique prefix (at least 4 characters) of the trial id.

    \b
    Example:
      atif view 3f2a9c1d -o trial.html
    """
    from atif import render_trial_html

    with open_store(db_path, read_only=True) as store:
        text = render_trial_html(store, trial_id)
    _write(text, output or f"trial-{trial_id[:12]}.html")
