"""The ``atif`` command line: thin click commands over the public API.

Commands are loaded lazily so that ``atif --help`` imports neither the store
nor the judge (litellm takes seconds to import).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# name -> (module:function, one-line help shown by `atif --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("atif.cli.validate:validate_cmd", "Validate ATIF trajectory files (every error at once)."),
    "schema": ("atif.cli.validate:schema_cmd", "Print the JSON Schema of an ATIF version."),
    "convert": ("atif.cli.convert:convert_cmd", "Convert runner output (Harbor, LangChain, ...) to ATIF + trials."),
    "upload": ("atif.cli.store:upload_cmd", "Store trials in the DuckDB store (idempotent)."),
    "query": ("atif.cli.store:query_cmd", "Run read-only SQL over the store's views."),
    "experiments": ("atif.cli.store:experiments_cmd", "List stored experiments."),
    "trials": ("atif.cli.store:trials_cmd", "List the trials of an experiment."),
    "evaluate": ("atif.cli.judge:evaluate_cmd", "Judge every trial x criterion that has no rating yet."),
    "judge": ("atif.cli.judge:judge_group", "Judge tools: render prompts, serve the local model."),
    "criteria": ("atif.cli.criteria:criteria_group", "The built-in criteria library: list and explain them."),
    "report": ("atif.cli.report:report_cmd", "Summarise an experiment (markdown, json, html)."),
    "compare": ("atif.cli.report:compare_cmd", "Compare two experiments, with significance tests."),
    "gate": ("atif.cli.report:gate_cmd", "Exit 1 when an experiment misses its thresholds (for CI)."),
    "calibrate": ("atif.cli.report:calibrate_cmd", "Agreement of the judge with human or pre-computed ratings."),
    "export": ("atif.cli.report:export_cmd", "Export an experiment as datasets or Parquet."),
    "view": ("atif.cli.report:view_cmd", "Write a self-contained HTML viewer of one trial."),
    "serve": ("atif.cli.serve:serve_cmd", "Serve a live web app over the store, with human review."),
    "store": ("atif.cli.store_copy:store_group", "Whole-store tools: copy a file store into a team store and back."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when run (or asked for their own help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if ctx.resilient_parsing or _listing_help(ctx):
            return click.Command(cmd_name, help=COMMANDS[cmd_name][1], short_help=COMMANDS[cmd_name][1])
        target, _ = COMMANDS[cmd_name]
        module, attr = target.split(":")
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"command {cmd_name!r} is not available: {exc}") from exc
        return cmd


def _listing_help(ctx: click.Context) -> bool:
    # `atif --help` formats every command's short help: serve it from COMMANDS.
    return ctx.info_name == "atif" and any(a in ("--help", "-h") for a in sys.argv[1:2])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atif")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """atif: convert, store, judge and analyse AI agent trajectories (ATIF v1).

    \b
    Example:
      atif convert jobs/2026-11-21__09-30-00 -o out/
      atif upload out/ --experiment nightly --criteria criteria.yaml --evaluate
      atif query "select * from experiment_metrics"
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``atif`` console script."""
    from atif.cli._common import run

    return run(cli, argv)


if __name__ == "__main__":  # pragma: no cover
    main()
