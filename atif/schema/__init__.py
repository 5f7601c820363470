"""ATIF v1.0–v1.8: models, version table, validation, repair and JSON Schema export."""

from atif.schema.issues import Issue
from atif.schema.jsonio import load_json, max_file_bytes, read_file
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
from atif.schema.validate import CODES, EXTRA_CHECKS, ValidationReport, load_trajectory, validate
from atif.schema.versions import ADDED, LATEST, VERSIONS

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
