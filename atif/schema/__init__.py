"""ATIF v1.0–v1.8: models, version table, validation, repair and JSON Schema export.

The pydantic models load on first use: validating a document needs neither them nor
pydantic's schema generation (see :mod:`atif.schema.shape`), so ``atif validate`` and the
store's ingest do not pay for them. The rest is imported here (``validate`` must be: it is
also the name of a submodule, which would otherwise shadow the function).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atif.schema.issues import Issue
from atif.schema.jsonio import load_json, max_file_bytes, read_file
from atif.schema.validate import CODES, EXTRA_CHECKS, ValidationReport, load_trajectory, validate
from atif.schema.versions import ADDED, LATEST, VERSIONS

if TYPE_CHECKING:
    from atif.schema.models import (
        Agent,
        AudioSource,
        ContentPart,
        FinalMetrics,
        ImageSource,
        Metrics,
        Observation,
        ObservationResult,
        Step,
        SubagentTrajectoryRef,
        ToolCall,
        Trajectory,
    )

_MODELS = frozenset({"Agent", "AudioSource", "ContentPart", "FinalMetrics", "ImageSource", "Metrics",
                     "Observation", "ObservationResult", "Step", "SubagentTrajectoryRef", "ToolCall",
                     "Trajectory"})

__all__ = [
    "ADDED",
    "CODES",
    "EXTRA_CHECKS",
    "LATEST",
    "VERSIONS",
    "Agent",
    "AudioSource",
    "ContentPart",
    "FinalMetrics",
    "ImageSource",
    "Issue",
    "Metrics",
    "Observation",
    "ObservationResult",
    "Step",
    "SubagentTrajectoryRef",
    "ToolCall",
    "Trajectory",
    "ValidationReport",
    "load_json",
    "load_trajectory",
    "max_file_bytes",
    "read_file",
    "validate",
]


def __getattr__(name: str) -> Any:
    if name not in _MODELS:
        raise AttributeError(f"module 'atif.schema' has no attribute {name!r}")
    from atif.schema import models

    value = getattr(models, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
