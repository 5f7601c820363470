"""Shared CLI plumbing: error mapping, output formats, the database option."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from atif import AtifError

# Exit codes: 0 ok, 1 failure (invalid input, failed gate, error), 2 usage error.
EXIT_FAILURE = 1


def run(cli: click.Group, argv: list[str] | None) -> Any:
    """Run the CLI; turn an ``AtifError`` into one line on stderr and exit 1 (``--debug``: traceback)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("ATIF_DEBUG") == "1"
    try:
        return cli.main(args=args, prog_name="atif", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except AtifError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug or an unexpected library error: one line, not a traceback
        if debug:
            raise
        kind = type(exc).__name__
        if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):
            kind = f"database error ({kind})"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"Error: {kind}: {first} (rerun with --debug for the traceback)", err=True)
        sys.exit(EXIT_FAILURE)


_DATA_PATH = "atif.data_path"


class StoreTarget(click.ParamType):
    """A DuckDB file path (not a folder), or a team store ``ducklake:postgres:...`` taken as it is."""

    name = "TARGET"
    _file = click.Path(dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith("ducklake:"):
            return value
        return self._file.convert(value, param, ctx)


def _remember_data_path(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[_DATA_PATH] = value


def db_option(f: Any) -> Any:
    """``--db TARGET`` (default ``$ATIF_DB`` or ``./atif.duckdb``) and ``--data-path`` for a team store."""
    f = click.option(
        "--data-path",
        envvar="ATIF_DATA_PATH",
        expose_value=False,
        callback=_remember_data_path,
        help="Team store only: folder or s3://bucket/prefix of its Parquet files (env ATIF_DATA_PATH).",
    )(f)
    return click.option(
        "--db",
        "db_path",
        envvar="ATIF_DB",
        default="atif.duckdb",
        show_default=True,
        type=StoreTarget(),
        help="DuckDB store file, or a team store: ducklake:postgres:dbname=atif host=... (env ATIF_DB).",
    )(f)


def open_store(
    db_path: str, *, read_only: bool = False, wait: float = 0.0, allow_files: Any = (), shard: Any = None
) -> Any:
    """The one way commands open the store named by ``--db`` (see ``Store.open`` for the options)."""
    from atif import Store

    return Store.open(db_path, read_only=read_only, wait=wait, allow_files=allow_files, data_path=data_path(),
                      shard=shard)


def data_path() -> str | None:
    """The ``--data-path`` (or ``$ATIF_DATA_PATH``) of the running command."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_DATA_PATH) if ctx is not None else None


def json_text(data: Any, *, sort_keys: bool = False) -> str:
    """JSON text (UTF-8, two-space indent, trailing newline), keys in the given order unless ``sort_keys``."""
    import orjson

    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(data, option=option, default=str).decode() + "\n"


def emit_json(data: Any, *, sort_keys: bool = False) -> None:
    """Print JSON (see :func:`json_text`) to stdout."""
    sys.stdout.write(json_text(data, sort_keys=sort_keys))


def fail(message: str) -> None:
    """Raise a one-line error that exits 1."""
    raise AtifError(message)
