"""``atif evaluate --shard I/N`` and ``--workers N``: splitting the judging between processes.

The store hands each process its shard of the pending pairs (a hash of trial id and criterion,
the same on every machine), so no pair is judged by two of them. ``--workers N`` starts N
processes, shard 1/N ... N/N, waits for them, and then the command itself judges whatever is
still pending: the pairs of a worker that failed or was killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import click

from atif.cli._common import data_path


class ShardType(click.ParamType):
    """``I/N`` with 1 <= I <= N, as ``(I, N)``."""

    name = "I/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            i, n = (int(x) for x in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not I/N (e.g. 2/3)", param, ctx)
        if not 1 <= i <= n:
            self.fail(f"{value!r}: a shard I/N needs 1 <= I <= N", param, ctx)
        return i, n


def run_workers(n: int, args: list[str]) -> None:
    """Run ``atif evaluate ARGS --shard k/n`` for k = 1..n at once and wait; say which ones failed."""
    env = dict(os.environ)
    where = data_path()
    if where:
        env["ATIF_DATA_PATH"] = where
    cmd = [sys.executable, "-c", "from atif.cli import main; main()", "evaluate", *args, "--format", "json"]
    procs = [subprocess.Popen([*cmd, "--shard", f"{k}/{n}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env)
             for k in range(1, n + 1)]
    for k, p in enumerate(procs, start=1):
        _, err = p.communicate()
        if p.returncode != 0:
            last = (err or b"").decode(errors="replace").strip().splitlines()[-1:] or [f"status {p.returncode}"]
            click.echo(f"worker {k}/{n} failed ({last[0]}); its pairs are judged now", err=True)
