"""Progress of long library calls, reported through a callback; only the CLI draws it.

``convert``, ``upload`` and ``evaluate`` take ``on_progress``: a callable that receives a
:class:`Progress` after each unit of work (an input converted, a batch stored, a pair judged).
The callback runs on the caller's thread or on a worker thread; keep it quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a long operation stands."""

    stage: str
    """What is running: ``converting``, ``uploading`` or ``judging``."""
    done: int
    """Units finished so far (inputs, trials, pairs)."""
    total: int | None = None
    """Units in all, when known in advance."""
    detail: str = ""
    """A short note to show beside the count (the current input, the cost so far)."""
    cost_usd: float | None = None
    """Money spent so far, where the operation spends any (the judge)."""


ProgressCallback = Callable[[Progress], None]
"""The type of ``on_progress`` arguments."""
