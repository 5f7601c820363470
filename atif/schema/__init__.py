"""ATIF v1.0–v1.8: models, version table, validation, repair and JSON Schema export.

Names load on first use, so importing one small module of this package (``atif.schema.identity``,
``atif.schema.jsonio``) does not build the pydantic models.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Issue": "atif.schema.issues",
    "load_json": "atif.schema.jsonio",
    "max_file_bytes": "atif.schema.jsonio",
    "read_file": "atif.schema.jsonio",
    **{name: "atif.schema.models" for name in (
        "Agent", "AudioSource", "ContentPart", "FinalMetrics", "ImageSource", "Metrics", "Observation",
        "ObservationResult", "Step", "SubagentTrajectoryRef", "ToolCall", "Trajectory")},
    **{name: "atif.schema.validate" for name in ("CODES", "EXTRA_CHECKS", "ValidationReport", "validate")},
    **{name: "atif.schema.versions" for name in ("ADDED", "LATEST", "VERSIONS")},
}

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
    "max_file_bytes",
    "read_file",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atif.schema' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
