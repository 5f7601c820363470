"""``atif upload``, ``atif query``, ``atif experiments``, ``atif trials``: the store from the command line."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import click

from atif.cli._common import EXIT_FAILURE, db_option, emit_json, open_store
from atif.cli._progress import progress_bar

MAX_LISTED = 50
DEFAULT_WAIT = 5.0
"""Seconds ``atif query`` waits for a writer of the store to finish."""


def _criteria_data(path: Path) -> dict[str, Any]:
    """The criteria file as the store takes it, with module and template paths made absolute."""
    from atif import load_criteria

    return load_criteria(path).store_spec()


@click.command(name="upload")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-e", "--experiment", required=True, help="Experiment to store the trials in (created if new).")
@click.option("--collection", help="Collection of tasks (default: the experiment's, or the experiment name).")
@click.option("--criteria", "criteria_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Criteria file (YAML): the criterion set and judge settings of the experiment.")
@click.option("--tasks", "tasks_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Tasks file (YAML, JSON or JSONL list of {name, instruction, tags}).")
@click.option("--epoch", type=click.IntRange(min=1), help="Epoch of trials whose record gives none.")
@click.option("--create-missing-tasks", is_flag=True, help="Add tasks the collection lacks instead of rejecting their trials.")
@click.option("--replace", is_flag=True, help="Overwrite stored trials whose record or trajectory changed.")
@click.option("--evaluate", is_flag=True, help="Judge the pending trial x criterion pairs after storing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Trials per transaction.")
@click.option("--task", "task", metavar="NAME",
              help="Task name of every trial of raw runner output (as `atif convert --task`).")
@click.option("--task-from", "task_from", metavar="EXPR",
              help="JMESPath expression on raw runner output giving each trial's task (as `atif convert --task-from`).")
@click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="Processes reading trials files (parse, validate, flatten); default: $ATIF_WORKERS, "
                   "else one per core for large files; 1: this process only.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@db_option
def upload_cmd(
    sources: tuple[Path, ...],
    experiment: str,
    collection: str | None,
    criteria_file: Path | None,
    tasks_file: Path | None,
    epoch: int | None,
    create_missing_tasks: bool,
    replace: bool,
    evaluate: bool,
    batch_size: int,
    task: str | None,
    task_from: str | None,
    workers: int | None,
    fmt: str,
    db_path: str,
) -> None:
    """Store trials in the DuckDB store; uploading the same trials again changes nothing.

    SOURCES are converted output (a trials.jsonl, or a folder holding one, from
    `atif convert`), ATIF trajectory files or folders of them, or raw runner output
    (converted on the fly). Bad inputs are reported and everything valid is stored;
    the exit code is 1 if any trial could not be stored. A line of a trials file
    stored before, whose trajectory file is unchanged too, is recognised by its bytes
    and not read again.

    \b
    Example:
      atif upload out/ --experiment nightly --criteria criteria.yaml
      atif upload jobs/2026-11-21__09-30-00 -e nightly --tasks tasks.yaml --evaluate
      atif upload runs/*.json -e smoke --create-missing-tasks --format json
    """
    import atif

    if task and task_from:
        raise click.UsageError("give --task or --task-from, not both")
    criteria = _criteria_data(criteria_file) if criteria_file is not None else None
    with open_store(db_path) as store:
        with progress_bar(fmt == "text") as on_progress:
            result = atif.upload(
                list(sources),
                experiment,
                store=store,
                collection=collection,
                criteria=criteria,
                tasks_file=tasks_file,
                epoch=epoch,
                create_missing_tasks=create_missing_tasks,
                replace=replace,
                batch_size=batch_size,
                task=task,
                task_from=task_from,
                on_progress=on_progress,
                workers=workers,
            )
        summary = None
        if fmt != "json":
            _print_upload(result)  # before judging, which can take a while
        if evaluate:
            with progress_bar(fmt == "text") as on_progress:
                summary = _evaluate(store, experiment, on_progress)
            still_pending = store.pending_count(experiment)
    if fmt == "json":
        data = result.to_dict()
        if summary is not None:
            data["evaluation"] = summary.to_dict() if hasattr(summary, "to_dict") else str(summary)
            data["pending_after_evaluation"] = still_pending
        emit_json(data)
    elif summary is not None:
        click.echo(str(summary))
        if still_pending:
            click.echo(f"  still pending    {still_pending} (run `atif evaluate -e {experiment}` to retry)")
    if not result.ok:
        sys.exit(EXIT_FAILURE)


def _evaluate(store: Any, experiment: str, on_progress: Any) -> Any:
    from atif import JudgeError

    try:
        from atif import evaluate
    except ImportError as exc:
        raise JudgeError(f"--evaluate needs the judge (atif.judge.engine), which cannot be loaded: {exc}") from None
    return evaluate(store, experiment, on_progress=on_progress)


def _print_upload(r: Any) -> None:
    echo = click.echo
    cset = f", criterion set {r.criterion_set}" if r.criterion_set else ""
    echo(f"Experiment {r.experiment} (collection {r.collection}{cset})")
    if r.nothing_new:
        echo(f"  nothing new: all {r.unchanged_trials} trials were already stored")
    rows = [
        ("created trials", r.created_trials),
        ("unchanged trials", r.unchanged_trials),
        ("replaced trials", r.replaced_trials),
        ("created tasks", r.created_tasks),
        ("created ratings", r.created_ratings),
        ("pending evaluations", r.pending_evaluations),
    ]
    for label, n in rows:
        if n or label in ("created trials", "unchanged trials", "pending evaluations"):
            echo(f"  {label:<20} {n}")
    if r.added_criteria:
        echo(f"  added criteria       {', '.join(r.added_criteria)} (found in pre-computed ratings; no question yet)")
    if r.updated_criteria:
        echo(f"  updated criteria     {', '.join(r.updated_criteria)} (their judge ratings were dropped)")
    if r.warnings:
        echo(f"  warnings             {len(r.warnings)}")
    if r.unmatched:
        echo(f"  unmatched trials     {len(r.unmatched)} (task not in collection {r.collection}; not stored)")
        for u in r.unmatched[:MAX_LISTED]:
            hint = f"; closest: {', '.join(u.closest)}" if u.closest else ""
            echo(f"    {u.file}: task {u.task_name!r}{hint}")
        if len(r.unmatched) > MAX_LISTED:
            echo(f"    ... and {len(r.unmatched) - MAX_LISTED} more (--format json lists all)")
        echo("    (add them with --tasks FILE, or pass --create-missing-tasks)")
    if r.errors:
        echo(f"  errors               {len(r.errors)}")
        for e in r.errors[:MAX_LISTED]:
            echo(f"    {e.file}: {e.reason}")
        if len(r.errors) > MAX_LISTED:
            echo(f"    ... and {len(r.errors) - MAX_LISTED} more (--format json lists all)")


# -- query ---------------------------------------------------------------------------------------


def _cell(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    return v


def _json_value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", errors="replace")
    return v


def write_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, out: Path | None) -> None:
    """Render rows as a rich table, CSV or a JSON array of row objects, to ``out`` or stdout."""
    if fmt == "json":
        import orjson

        data = orjson.dumps(
            [{c: _json_value(v) for c, v in zip(columns, row, strict=False)} for row in rows],
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
            default=str,
        ) + b"\n"
        if out is not None:
            out.write_bytes(data)
        else:
            sys.stdout.write(data.decode())
        return
    if fmt == "csv":
        fh = out.open("w", newline="", encoding="utf-8") if out is not None else sys.stdout
        try:
            w = csv.writer(fh, lineterminator="\n")  # \r\n would stick to values read by shell scripts
            w.writerow(columns)
            for row in rows:
                w.writerow(["" if v is None else _cell(v) for v in row])
        finally:
            if out is not None:
                fh.close()
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Text, not str: rich would read "[b]" in a value as markup and ":smile:" as an emoji code.
    table = Table(show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(Text(c), overflow="fold")
    for row in rows:
        table.add_row(*[Text("" if v is None else str(_cell(v))) for v in row])
    if out is not None:
        with out.open("w", encoding="utf-8") as fh:
            Console(file=fh, width=100_000).print(table)
    elif sys.stdout.isatty():
        Console().print(table)
    else:
        # Piped output is not wrapped to 80 columns: the table takes its natural width.
        Console(width=100_000).print(table)


@click.command(name="query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="Output format (parquet needs -o).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout.")
@click.option("--wait", type=click.FloatRange(min=0), default=DEFAULT_WAIT, show_default=True, metavar="SECONDS",
              help="While another process writes the store (an upload), wait this long for it before giving up.")
@click.option("--allow-files", "allow_files", multiple=True, type=click.Path(exists=True, path_type=Path),
              metavar="PATH", help="A file (or folder) the query may read, e.g. with read_csv(); repeatable.")
@db_option
def query_cmd(sql: str, fmt: str, output: Path | None, wait: float, allow_files: tuple[Path, ...], db_path: str) -> None:
    """Run read-only SQL over the store's views (statements that write are refused).

    Views: trials, steps, tool_calls, ratings, experiment_metrics, criterion_metrics,
    judge_usage (columns in docs/sql.md). `--format json` prints one JSON array of row objects.
    Queries read no file but the store and the --allow-files ones, and reach no network.

    \b
    Example:
      atif query "select * from experiment_metrics"
      atif query "select task_name, reward from trials where experiment = 'nightly'" --format csv
      atif query "select * from ratings" --format parquet -o ratings.parquet
    """
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs -o FILE")
    with open_store(db_path, read_only=True, wait=wait, allow_files=allow_files) as store:
        if fmt == "parquet":
            assert output is not None
            n = store.query_to_parquet(sql, output)
            click.echo(f"wrote {n} rows to {output}", err=True)
            return
        columns, rows = store.query(sql, decode_json=fmt == "json")
    write_rows(columns, rows, fmt, output)


@click.command(name="experiments")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
@db_option
def experiments_cmd(fmt: str, db_path: str) -> None:
    """List stored experiments with their collection, criterion set and counts.

    \b
    Example:
      atif experiments
      atif experiments --format json --db runs/atif.duckdb
    """
    with open_store(db_path, read_only=True) as store:
        rows = store.experiments()
    columns = ["name", "collection", "criterion_set", "n_trials", "n_ratings", "created_at"]
    if fmt == "json":
        emit_json([{c: r[c] for c in columns + ["description"]} for r in rows])
        return
    if not rows and fmt == "table":
        click.echo("no experiments stored yet (atif upload SRC --experiment NAME)")
        return
    write_rows(columns, [tuple(r[c] for c in columns) for r in rows], fmt, None)


@click.command(name="trials")
@click.option("-e", "--experiment", required=True, help="Experiment to list.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
@db_option
def trials_cmd(experiment: str, fmt: str, db_path: str) -> None:
    """List the trials of an experiment (id, task, epoch, reward, cost, steps, error).

    \b
    Example:
      atif trials --experiment nightly
      atif trials -e nightly --format csv > trials.csv
    """
    with open_store(db_path, read_only=True) as store:
        rows = store.trials(experiment)
    if fmt == "json":
        emit_json(rows)
        return
    columns = ["trial_id", "task_name", "epoch", "reward", "cost_usd", "duration_seconds", "steps", "model_name",
               "error"]
    data = []
    for r in rows:
        row = dict(r)
        if fmt == "table":
            row["trial_id"] = row["trial_id"][:12]
            if row["error"] and len(row["error"]) > 60:
                row["error"] = row["error"][:57] + "..."
        data.append(tuple(row[c] for c in columns))
    write_rows(columns, data, fmt, None)
