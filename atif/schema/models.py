"""Pydantic models of every ATIF v1 object (v1.0 to v1.8).

The models describe the *shape* of a trajectory with the same types and the
same lax coercion as Harbor's reference models. Cross-field rules (sequential
step ids, agent-only fields, tool-call references, content-part rules, version
gates) are checked in one pass by :mod:`atif.schema.validate`, so that every
problem is reported at once instead of stopping at the first model validator.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The media types live in atif.schema.media (read by the rule pass without pydantic); re-exported here.
from atif.schema.media import AUDIO_MEDIA_TYPE_ALIASES as AUDIO_MEDIA_TYPE_ALIASES
from atif.schema.media import AUDIO_MEDIA_TYPES as AUDIO_MEDIA_TYPES
from atif.schema.media import IMAGE_MEDIA_TYPES as IMAGE_MEDIA_TYPES
from atif.schema.media import normalize_audio_media_type as normalize_audio_media_type

__all__ = [
    "Agent",
    "AudioSource",
    "ContentPart",
    "FinalMetrics",
    "ImageSource",
    "Metrics",
    "Observation",
    "ObservationResult",
    "Step",
    "SubagentTrajectoryRef",
    "ToolCall",
    "Trajectory",
]

# defer_build: the full shape check reads only the fields (for its TypedDict twins), never builds a model.
_CONFIG = ConfigDict(extra="forbid", use_attribute_docstrings=True, defer_build=True)


class Agent(BaseModel):
    """The agent system that produced the trajectory."""

    model_config = _CONFIG

    name: str
    """Name of the agent system (e.g. ``terminus-2``, ``openhands``)."""
    version: str
    """Version identifier of the agent system."""
    model_name: str | None = None
    """Default LLM model of the trajectory; steps may override it."""
    tool_definitions: list[dict[str, Any]] | None = None
    """Tools available to the agent, in OpenAI's function-calling schema. Added in ATIF-v1.5."""
    extra: dict[str, Any] | None = None
    """Custom agent configuration."""


class ImageSource(BaseModel):
    """An image stored as a file or at a URL."""

    model_config = _CONFIG

    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    """MIME type of the image."""
    path: str
    """Relative or absolute file path, or URL, of the image."""


class AudioSource(BaseModel):
    """An audio clip stored as a file or at a URL. Added in ATIF-v1.8."""

    model_config = _CONFIG

    media_type: str
    """MIME type of the audio: one of ``AUDIO_MEDIA_TYPES`` or a known alias (``audio/mp3``)."""
    path: str
    """Relative or absolute file path, or URL, of the audio."""
    duration_sec: float | None = Field(default=None, ge=0)
    """Duration in seconds, when known."""


class ContentPart(BaseModel):
    """One part of a multimodal message or observation. Added in ATIF-v1.6 (audio in v1.8)."""

    model_config = _CONFIG

    type: Literal["text", "image", "audio"]
    """Kind of content: ``text``, ``image`` or (since ATIF-v1.8) ``audio``."""
    text: str | None = None
    """Text of a ``text`` part; absent on media parts."""
    source: ImageSource | AudioSource | None = None
    """Media file of an ``image`` or ``audio`` part; absent on text parts."""


class ToolCall(BaseModel):
    """One structured action of an agent step."""

    model_config = _CONFIG

    tool_call_id: str
    """Identifier of the call; observation results point back to it."""
    function_name: str
    """Name of the tool or function invoked."""
    arguments: dict[str, Any]
    """Arguments of the call, as a JSON object (never a JSON-encoded string)."""
    extra: dict[str, Any] | None = None
    """Custom tool-call metadata. Added in ATIF-v1.7."""


class SubagentTrajectoryRef(BaseModel):
    """A reference to the trajectory of a delegated subagent."""

    model_config = _CONFIG

    trajectory_id: str | None = None
    """Id of an embedded entry of ``subagent_trajectories``. Added in ATIF-v1.7."""
    session_id: str | None = None
    """Run identity of the subagent; informational, never a resolution key since ATIF-v1.7."""
    trajectory_path: str | None = None
    """Location of the subagent trajectory as an external file or URL."""
    extra: dict[str, Any] | None = None
    """Custom metadata about the subagent run."""


class ObservationResult(BaseModel):
    """One result inside an observation."""

    model_config = _CONFIG

    source_call_id: str | None = None
    """``tool_call_id`` of the call of the same step this result answers; null for other actions."""
    content: str | list[ContentPart] | None = None
    """Output of the action: text, or content parts (ATIF-v1.6)."""
    subagent_trajectory_ref: list[SubagentTrajectoryRef] | None = None
    """Subagent trajectories this action delegated to."""
    extra: dict[str, Any] | None = None
    """Custom result metadata. Added in ATIF-v1.7."""


class Observation(BaseModel):
    """Environment feedback after actions or system events."""

    model_config = _CONFIG

    results: list[ObservationResult]
    """Results of the step's tool calls or actions."""


class Metrics(BaseModel):
    """LLM usage and confidence data of one step."""

    model_config = _CONFIG

    prompt_tokens: int | None = None
    """Input tokens, cached ones included."""
    completion_tokens: int | None = None
    """Tokens generated by the LLM."""
    cached_tokens: int | None = None
    """Part of ``prompt_tokens`` served from a cache."""
    cost_usd: float | None = None
    """Cost of the call(s) in US dollars."""
    prompt_token_ids: list[int] | None = None
    """Token ids sent to the LLM, history included. Added in ATIF-v1.4."""
    completion_token_ids: list[int] | None = None
    """Token ids of the completion. Added in ATIF-v1.3."""
    logprobs: list[float] | None = None
    """Log probability of each generated token."""
    extra: dict[str, Any] | None = None
    """Other metrics."""


class Step(BaseModel):
    """One turn of the interaction: a system, user or agent message."""

    model_config = _CONFIG

    step_id: int = Field(ge=1)
    """Ordinal of the step, sequential from 1."""
    timestamp: str | None = None
    """ISO 8601 time of the step."""
    source: Literal["system", "user", "agent"]
    """Originator of the step."""
    model_name: str | None = None
    """LLM of this step (agent steps only); defaults to ``agent.model_name``."""
    reasoning_effort: str | float | None = None
    """Qualitative or numeric reasoning effort (agent steps only)."""
    message: str | list[ContentPart]
    """The message: text, or content parts (ATIF-v1.6)."""
    reasoning_content: str | None = None
    """The agent's explicit reasoning (agent steps only)."""
    tool_calls: list[ToolCall] | None = None
    """Actions of the agent (agent steps only)."""
    observation: Observation | None = None
    """Feedback to the actions; on system steps since ATIF-v1.2."""
    metrics: Metrics | None = None
    """LLM usage of the step (agent steps only)."""
    is_copied_context: bool | None = None
    """True when the step was copied from an earlier trajectory as context. Added in ATIF-v1.5."""
    llm_call_count: int | None = Field(default=None, ge=0)
    """LLM calls the step stands for; 0 means a deterministic dispatch. Added in ATIF-v1.7."""
    extra: dict[str, Any] | None = None
    """Custom step metadata."""


class FinalMetrics(BaseModel):
    """Totals over the whole trajectory."""

    model_config = _CONFIG

    total_prompt_tokens: int | None = None
    """Sum of prompt tokens of all steps, cached included."""
    total_completion_tokens: int | None = None
    """Sum of completion tokens of all steps."""
    total_cached_tokens: int | None = None
    """Sum of cached tokens of all steps."""
    total_cost_usd: float | None = None
    """Total cost in US dollars, subagents included."""
    total_steps: int | None = Field(default=None, ge=0)
    """Number of steps; a different count than ``len(steps)`` must be explained in ``notes``."""
    extra: dict[str, Any] | None = None
    """Custom aggregate metrics."""


class Trajectory(BaseModel):
    """One ATIF document: the complete interaction history of one agent run."""

    model_config = _CONFIG

    schema_version: str = "ATIF-v1.8"
    """ATIF version the document declares, ``ATIF-v1.0`` to ``ATIF-v1.8``."""
    session_id: str | None = None
    """Run identity (shared by a trajectory, its subagents and continuations); optional since ATIF-v1.7."""
    trajectory_id: str | None = None
    """Unique id of this document; required on embedded subagents. Added in ATIF-v1.7."""
    agent: Agent
    """The agent system."""
    steps: list[Step] = Field(min_length=1)
    """The steps, in order."""
    notes: str | None = None
    """Free-form notes."""
    final_metrics: FinalMetrics | None = None
    """Totals over the trajectory."""
    continued_trajectory_ref: str | None = None
    """File that continues this trajectory (e.g. after context summarisation)."""
    extra: dict[str, Any] | None = None
    """Custom root metadata. Added in ATIF-v1.1."""
    subagent_trajectories: list[Trajectory] | None = None
    """Embedded subagent trajectories, each complete with step ids from 1. Added in ATIF-v1.7."""
