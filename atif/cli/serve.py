"""``atif serve``: the live web app over the store."""

from __future__ import annotations

import click

from atif import AtifError
from atif.cli._common import data_path, db_option

_INSTALL_HINT = "atif serve needs the serve extra: pip install 'atif[serve]' (starlette, uvicorn)"


@click.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than 127.0.0.1/localhost requires a token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--read-only", is_flag=True, help="Only read the store; serve no review (write) route.")
@click.option("--reviewer", default=None, help="Reviewer name stored with labels when the browser gives none "
                                               "(default: your user name).")
@click.option("--token", envvar="ATIF_SERVE_TOKEN", default=None,
              help="Access token every request must carry (env ATIF_SERVE_TOKEN); generated when the host "
                   "is not local and none is given.")
def serve_cmd(db_path: str, host: str, port: int, read_only: bool, reviewer: str | None, token: str | None) -> None:
    """Serve a live web app over the store: experiments, trials, compare, calibration, human review.

    Labels from the review queue are stored as `human` ratings in the same store; they take
    precedence over judge ratings and feed `atif calibrate`. Uploads and ratings made while
    the server runs appear without a restart.

    \b
    Example:
      atif serve --db atif.duckdb
      atif serve --read-only --port 8080
      atif serve --host 0.0.0.0 --reviewer alice     # prints a URL with a fresh token
    """
    try:
        from atif import ServerInfo, run_server
    except ImportError:
        raise AtifError(_INSTALL_HINT) from None

    def started(info: ServerInfo) -> None:
        click.echo(f"atif serve: {info.url}  (Ctrl+C stops)", err=True)
        if info.token_generated:
            click.echo("A token was generated for this non-local host; every request must carry it.", err=True)

    run_server(db_path, host=host, port=port, read_only=read_only, token=token, reviewer=reviewer,
               on_start=started, data_path=data_path())
