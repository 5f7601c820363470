"""``atif criteria list|show``: the built-in criteria library from the command line."""

from __future__ import annotations

import click

from atif.cli._common import emit_json


@click.group(name="criteria", context_settings={"help_option_names": ["-h", "--help"]})
def criteria_group() -> None:
    """The built-in criteria a criteria file takes with `use: <name>`.

    \b
    Example:
      atif criteria list
      atif criteria show no-loops
    """


@criteria_group.command(name="list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: a list of {name, kind, description}.")
def list_cmd(fmt: str) -> None:
    """List the built-in criteria: exact checks (kind function) first, then LLM criteria.

    \b
    Example:
      atif criteria list
      atif criteria list --format json | jq -r '.[].name'
    """
    from atif import builtin_criteria

    entries = builtin_criteria()
    if fmt == "json":
        emit_json([{"name": b.name, "kind": b.kind, "description": b.description} for b in entries])
        return
    width = max(len(b.name) for b in entries)
    for b in entries:
        click.echo(f"{b.name:<{width}}  {b.kind:<8}  {b.description}")


@criteria_group.command(name="show")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
def show_cmd(name: str, fmt: str) -> None:
    """Explain one built-in criterion: its question, how it decides, its parameters and failure modes.

    \b
    Example:
      atif criteria show honest-success
    """
    from atif import builtin_criterion

    b = builtin_criterion(name)
    if fmt == "json":
        emit_json(b.to_dict())
        return
    click.echo(f"{b.name} ({b.kind}): {b.description}\n")
    click.echo(f"Question: {b.question}")
    if b.checks:
        click.echo(f"\nHow it decides: {b.checks}")
    if b.params:
        click.echo("\nParameters (defaults): " + ", ".join(f"{k}={v!r}" for k, v in b.params.items()))
    click.echo("\nKnown failure modes:")
    for mode in b.failure_modes:
        click.echo(f"  - {mode}")
    click.echo(f"\nUse it:\n  criteria:\n    - use: {b.name}")
