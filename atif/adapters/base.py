"""What every adapter provides, and what a conversion yields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from atif.trial import Converted, Failure

__all__ = ["Adapter", "ConvertOptions", "Converted", "Failure", "Sniff"]


@dataclass(frozen=True, slots=True)
class Sniff:
    """An adapter's answer to "is this input yours?", with the reason either way."""

    ok: bool
    reason: str


@dataclass(slots=True)
class ConvertOptions:
    """Options of one conversion run."""

    mapping: Path | None = None
    """Declarative mapping file (the ``mapping`` adapter)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific options."""
    task: str | None = None
    """Task name for every trial (``--task``), instead of the one the input gives."""
    task_from: str | None = None
    """JMESPath expression on the input giving each trial's task name (``--task-from``)."""


@runtime_checkable
class Adapter(Protocol):
    """A reader of one runner's output format."""

    name: str
    """Name used by ``--from``."""
    description: str
    """One line for ``--help`` and docs."""

    def sniff(self, path: Path) -> Sniff:
        """Cheaply decide whether ``path`` (a file or directory) is in this adapter's format."""
        ...

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """Yield one ``Converted`` per trial found in ``path`` (or a ``Failure`` per bad one)."""
        ...
