"""``atif evaluate --shard I/N``: splitting the judging between machines.

The store hands each machine its shard of the pending pairs (a hash of trial id and criterion,
the same on every machine), so no pair is judged by two of them. (``--workers N``, on one
machine, shares the calls of one run between processes: :mod:`atif.judge.pool`.)
"""

from __future__ import annotations

from typing import Any

import click


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
