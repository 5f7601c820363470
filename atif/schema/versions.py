"""ATIF versions and what each one added.

The table ``ADDED`` is the single source of truth for version-aware validation,
for the JSON Schema export of older versions, and for the docs.
"""

from __future__ import annotations

from typing import NamedTuple

VERSIONS: tuple[str, ...] = tuple(f"ATIF-v1.{i}" for i in range(9))
LATEST = VERSIONS[-1]


class Addition(NamedTuple):
    """One thing a version added: ``model.field`` (or a rule name) and a note."""

    version: str
    model: str
    field: str
    note: str


ADDED: tuple[Addition, ...] = (
    Addition("ATIF-v1.1", "Trajectory", "extra", "root-level custom metadata"),
    Addition("ATIF-v1.2", "Step", "observation@system", "observation on system steps"),
    Addition("ATIF-v1.3", "Metrics", "completion_token_ids", "completion token ids"),
    Addition("ATIF-v1.4", "Metrics", "prompt_token_ids", "prompt token ids"),
    Addition("ATIF-v1.5", "Agent", "tool_definitions", "tool definitions"),
    Addition("ATIF-v1.5", "Step", "is_copied_context", "copied-context marker"),
    Addition("ATIF-v1.6", "ContentPart", "*", "multimodal content parts (text, image)"),
    Addition("ATIF-v1.7", "Trajectory", "subagent_trajectories", "embedded subagent trajectories"),
    Addition("ATIF-v1.7", "Trajectory", "trajectory_id", "per-document identifier"),
    Addition("ATIF-v1.7", "SubagentTrajectoryRef", "trajectory_id", "refs by trajectory id"),
    Addition("ATIF-v1.7", "Step", "llm_call_count", "number of LLM calls of a step"),
    Addition("ATIF-v1.7", "ToolCall", "extra", "tool-call custom metadata"),
    Addition("ATIF-v1.7", "ObservationResult", "extra", "observation-result custom metadata"),
    Addition("ATIF-v1.8", "ContentPart", "audio", "audio content parts"),
)

# Requirements an older version had and a newer one relaxed: (until, model, field).
REQUIRED_UNTIL: tuple[Addition, ...] = (
    Addition("ATIF-v1.6", "Trajectory", "session_id", "session_id is required before ATIF-v1.7"),
    Addition("ATIF-v1.6", "SubagentTrajectoryRef", "session_id", "refs name a session_id before ATIF-v1.7"),
)


def version_index(version: str) -> int:
    """Position of ``version`` in ``VERSIONS``; -1 when unknown."""
    try:
        return VERSIONS.index(version)
    except ValueError:
        return -1


def normalize_version(version: str) -> str:
    """Accept ``v1.8``, ``1.8`` or ``ATIF-v1.8``; return ``ATIF-v1.8`` (unknown stays as given)."""
    v = version.strip()
    if v.startswith("ATIF-"):
        return v
    v = v.removeprefix("v")
    candidate = f"ATIF-v{v}"
    return candidate if candidate in VERSIONS else version