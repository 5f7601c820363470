"""Draws library progress (:class:`atif.Progress` events) as a rich bar on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from atif import Progress, ProgressCallback


class _Bar:
    def __init__(self, transient: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.progress = RichProgress(
            TextColumn("{task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=transient,
        )
        self.task: Any = None
        self.started = time.perf_counter()

    def __call__(self, event: Progress) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(event.stage, total=event.total, stage=event.stage, rate="", detail="")
        rate = event.done / max(time.perf_counter() - self.started, 1e-6)
        detail = event.detail
        if event.cost_usd is not None:
            detail = (detail + " " if detail else "") + f"cost ${event.cost_usd:.4f}"
        self.progress.update(self.task, completed=event.done, total=event.total, stage=event.stage,
                             rate=f"{rate:.1f}/s", detail=detail)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


@contextmanager
def progress_bar(enabled: bool = True, *, transient: bool = True) -> Iterator[ProgressCallback | None]:
    """A callback that draws a bar while the block runs; None when disabled or stderr is no terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bar = _Bar(transient)
    try:
        yield bar
    finally:
        bar.close()
