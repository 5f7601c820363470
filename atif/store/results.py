"""What an upload reports: :class:`UploadResult` with its :class:`UploadError` and :class:`UnmatchedTrial` rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["UnmatchedTrial", "UploadError", "UploadResult"]


@dataclass(slots=True)
class UploadError:
    """A trial or input that was not stored, and why."""

    file: str
    """The file (``trials.jsonl:12`` for one line of a trials file)."""
    reason: str
    """One line."""


@dataclass(slots=True)
class UnmatchedTrial:
    """A trial whose task is not in the experiment's collection; not stored."""

    file: str
    """Where the trial came from."""
    task_name: str
    """The task name the trial gave."""
    closest: list[str]
    """The most similar task names of the collection, best first (may be empty)."""


@dataclass(slots=True)
class UploadResult:
    """What an upload stored, skipped and rejected."""

    experiment: str
    """The experiment the trials were stored in."""
    collection: str
    """The experiment's collection of tasks."""
    criterion_set: str | None
    """The experiment's criterion set, if it has one."""
    upload_id: str
    """Id of the row in the ``uploads`` table."""
    created_trials: int = 0
    """Trials stored for the first time."""
    unchanged_trials: int = 0
    """Trials already stored with the same record and trajectory (nothing written)."""
    replaced_trials: int = 0
    """Trials stored before with different content, overwritten (``replace=True`` only)."""
    created_ratings: int = 0
    """Pre-computed or human ratings stored from the trial records."""
    created_tasks: int = 0
    """Tasks added to the collection (from a tasks file or from the trials)."""
    pending_evaluations: int = 0
    """Trial x criterion pairs of the experiment with no rating yet (after this upload)."""
    added_criteria: list[str] = field(default_factory=list)
    """Labels found in pre-computed ratings but not in the criterion set; added to it."""
    updated_criteria: list[str] = field(default_factory=list)
    """Criteria whose question, kind or configuration changed; their derived ratings were dropped."""
    unmatched: list[UnmatchedTrial] = field(default_factory=list)
    """Trials whose task is not in the collection (not stored)."""
    errors: list[UploadError] = field(default_factory=list)
    """Inputs and trials that could not be stored."""
    warnings: list[UploadError] = field(default_factory=list)
    """Inputs passed over on purpose and ATIF warnings; nothing was lost."""

    @property
    def ok(self) -> bool:
        """True when every trial found was stored (no error, no unmatched task)."""
        return not self.errors and not self.unmatched

    @property
    def nothing_new(self) -> bool:
        """True when the upload found only trials that were already stored."""
        return self.created_trials == 0 and self.replaced_trials == 0 and self.unchanged_trials > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["ok"] = self.ok
        return d
