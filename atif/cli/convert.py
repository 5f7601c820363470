"""``atif convert``: runner output -> ATIF v1.8 trajectories + trials.jsonl."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from atif import AtifError, ConvertResult, InputReport, Progress, ProgressCallback, adapter_names, convert
from atif.cli._common import EXIT_FAILURE, emit_json
from atif.cli._progress import progress_bar

FORMATS = ["auto", *adapter_names()]
MAX_LISTED = 50
# A bar for fewer inputs only flickers.
PROGRESS_MIN_INPUTS = 4


@click.command(name="convert")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (trajectories/, trials.jsonl). Required unless --dry-run.")
@click.option("--from", "source_format", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Input format; auto asks each adapter in turn.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Declarative mapping file (YAML + JMESPath) for a custom runner; implies --from mapping.")
@click.option("--task", "task", metavar="NAME", help="Task name of every trial (default: what the input says, else the file's stem).")
@click.option("--task-from", "task_from", metavar="EXPR",
              help="JMESPath expression on each input (a JSON Lines file: the trial's line) giving its task name.")
@click.option("--dry-run", is_flag=True, help="Convert and check without writing; list each input's result and what it skipped.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Summary format.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def convert_cmd(
    sources: tuple[Path, ...],
    out_dir: Path | None,
    source_format: str,
    mapping: Path | None,
    task: str | None,
    task_from: str | None,
    dry_run: bool,
    output_format: str,
    no_progress: bool,
) -> None:
    """Convert agent-runner output in SOURCES to validated ATIF v1.8 trajectories.

    Writes OUT/trajectories/<task>/<trial>.json and OUT/trials.jsonl (one trial per line).
    Directories are walked; each input is sniffed unless --from is given. Bad inputs are
    reported and the rest is still converted; the exit code is 1 if any input failed
    or nothing was converted.

    \b
    Example:
      atif convert jobs/2026-11-21__09-30-00 -o out/
      atif convert chats/*.json --from openai-chat -o out/
      atif convert runs.jsonl --mapping my-runner.yaml --dry-run
      atif convert ~/.claude/projects -o out/
      atif convert runs.jsonl --from openai-chat --task-from metadata.task_id -o out/
    """
    if out_dir is None and not dry_run:
        raise click.UsageError("give an output directory with -o/--out (or use --dry-run)")
    if source_format == "mapping" and mapping is None:
        raise click.UsageError("--from mapping needs --mapping FILE")
    if task and task_from:
        raise click.UsageError("give --task or --task-from, not both")
    with progress_bar(not no_progress and output_format == "text") as bar:
        result = _convert(
            list(sources),
            out_dir,
            source_format=source_format,
            mapping=mapping,
            dry_run=dry_run,
            on_progress=_for_many_inputs(bar),
            task=task,
            task_from=task_from,
        )
    if output_format == "json":
        emit_json(result.to_dict())
    else:
        _print_text(result, out_dir)
    if result.failures or not result.converted:
        if not result.converted and not result.failures:
            click.echo("Error: nothing was converted", err=True)
        sys.exit(EXIT_FAILURE)


def _convert(*args: Any, **kwargs: Any) -> ConvertResult:
    """The library call; a bad option value (unknown format, bad --task-from) is a one-line error."""
    try:
        return convert(*args, **kwargs)
    except AtifError as exc:
        raise click.ClickException(str(exc)) from exc


def _for_many_inputs(bar: ProgressCallback | None) -> ProgressCallback | None:
    """Pass progress on to the bar only when there are enough inputs to show one."""
    if bar is None:
        return None

    def forward(event: Progress) -> None:
        if (event.total or 0) >= PROGRESS_MIN_INPUTS:
            bar(event)

    return forward


def _records(r: InputReport) -> str:
    counted = "" if r.counted else " (counted from the output)"
    return f"{r.records_read} records read, {r.records_mapped} mapped, {r.records_skipped} skipped{counted}"


def _print_text(result: ConvertResult, out_dir: Path | None) -> None:
    echo = click.echo
    if result.dry_run:
        for r in result.inputs:
            echo(f"{r.source}: {r.adapter or '-'}, {r.trials} trial{'s' if r.trials != 1 else ''}"
                 + (f", {_records(r)}" if r.records_read else ""))
            for reason, n in sorted(r.skip_reasons.items()):
                echo(f"  skipped {n} record{'s' if n != 1 else ''}: {reason}")
            for e in r.atif_errors[:MAX_LISTED]:
                echo(f"  ATIF error: {e}")
            for w in r.warnings[:MAX_LISTED]:
                echo(f"  warning: {w}")
            if len(r.warnings) > MAX_LISTED:
                echo(f"  ... and {len(r.warnings) - MAX_LISTED} more warnings")
            for s, reason in r.failures:
                echo(f"  failed: {s}: {reason}")
            for s, reason in r.skipped:
                echo(f"  skipped: {s}: {reason}")
    else:
        by_adapter: dict[str, int] = {}
        for r in result.inputs:
            if r.adapter:
                by_adapter[r.adapter] = by_adapter.get(r.adapter, 0) + 1
        if by_adapter:
            picked = ", ".join(f"{n} ({c} input{'s' if c != 1 else ''})" for n, c in sorted(by_adapter.items()))
            echo(f"Adapters: {picked}")
        for r in result.inputs:
            if r.lossy:
                reasons = ", ".join(f"{reason} ({n})" for reason, n in sorted(r.skip_reasons.items()))
                echo(f"warning: {r.source}: skipped {r.records_skipped} of {r.records_read} source records: {reasons}"
                     " (see --dry-run)", err=True)
        warnings = result.warnings
        for src, w in warnings[:MAX_LISTED]:
            echo(f"warning: {w}" if src in w else f"warning: {src}: {w}", err=True)
        if len(warnings) > MAX_LISTED:
            echo(f"... and {len(warnings) - MAX_LISTED} more warnings (see --format json)", err=True)
        for s, reason in result.skipped[:MAX_LISTED]:
            echo(f"skipped: {s}: {reason}", err=True)
        for s, reason in result.failures[:MAX_LISTED]:
            echo(f"failed: {s}: {reason}", err=True)
        if out_dir is not None and result.outputs:
            echo(f"Wrote {result.converted} trial{'s' if result.converted != 1 else ''} to {out_dir}/trials.jsonl")
    verb = "checked" if result.dry_run else "converted"
    echo(
        f"{result.converted} {verb}, {len(result.skipped)} skipped, {len(result.failures)} failed"
        + (f", {len(result.warnings)} warnings" if result.warnings else "")
    )
