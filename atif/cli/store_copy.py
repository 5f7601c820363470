"""``atif store copy``: move a whole store between a DuckDB file and a team store."""

from __future__ import annotations

import click

from atif.cli._common import StoreTarget, emit_json


@click.group(name="store", context_settings={"help_option_names": ["-h", "--help"]})
def store_group() -> None:
    """Whole-store tools: copy a store into another (a file into a team store, and back).

    \b
    Example:
      atif store copy atif.duckdb 'ducklake:postgres:dbname=atif host=db.internal' --data-path /shared/atif
    """


@store_group.command(name="copy")
@click.argument("src", type=StoreTarget())
@click.argument("dst", type=StoreTarget())
@click.option("--data-path", envvar="ATIF_DATA_PATH",
              help="The team store's folder or s3://bucket/prefix of Parquet files (env ATIF_DATA_PATH).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
def copy_cmd(src: str, dst: str, data_path: str | None, fmt: str) -> None:
    """Copy every experiment, trial, raw trajectory, rating and judge-cache entry of SRC into DST.

    SRC and DST are each a DuckDB file or a team store (ducklake:postgres:...). DST is created
    when new. Rows DST has already are left as they are, so running it again copies nothing twice.

    \b
    Example:
      atif store copy atif.duckdb 'ducklake:postgres:dbname=atif host=db.internal user=atif' --data-path /shared/atif
      atif store copy 'ducklake:postgres:dbname=atif host=db.internal user=atif' backup.duckdb --data-path /shared/atif
    """
    from atif import Store, copy_store

    with Store.open(src, read_only=True, data_path=data_path) as source, \
            Store.open(dst, data_path=data_path) as target:
        counts = copy_store(source, target)
    if fmt == "json":
        emit_json({"copied": counts})
        return
    total = sum(counts.values())
    click.echo(f"copied {total} rows into {target.label}" + ("" if total else " (it had everything already)"))
    for table, n in counts.items():
        if n:
            click.echo(f"  {table:<16} {n}")
