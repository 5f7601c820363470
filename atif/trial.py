"""Trial records: one agent attempt at one task, with elluminate's AgentTrialResult field names."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Converted", "CriterionRating", "Failure", "Trial", "Unchanged", "content_text", "trajectory_messages", "trajectory_totals"]

_VERDICTS = {
    "yes": "YES", "y": "YES", "true": "YES", "pass": "YES", "passed": "YES", "1": "YES",
    "no": "NO", "n": "NO", "false": "NO", "fail": "NO", "failed": "NO", "0": "NO",
}


class CriterionRating(BaseModel):
    """A verdict on one criterion that came with the trial (human or pre-computed)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, populate_by_name=True)

    criterion: str = Field(validation_alias="criterion")
    """Label of the criterion (``label`` is accepted as well)."""
    rating: Literal["YES", "NO"]
    """The verdict. Booleans and yes/no/pass/fail spellings are read as YES or NO."""
    reasoning: str | None = None
    """Why, in words."""
    source: Literal["human", "precomputed"] = "precomputed"
    """Who rated: a person (``human``) or an earlier automated run (``precomputed``)."""
    cited_steps: list[int] | None = None
    """Step ids the reasoning relies on."""

    @model_validator(mode="before")
    @classmethod
    def _label_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "criterion" not in data and "label" in data:
            data = dict(data)
            data["criterion"] = data.pop("label")
        return data

    @field_validator("rating", mode="before")
    @classmethod
    def _verdict(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return "YES" if v else "NO"
        if isinstance(v, (str, int)) and str(v).strip().lower() in _VERDICTS:
            return _VERDICTS[str(v).strip().lower()]
        return v


class Trial(BaseModel):
    """One agent attempt at one task (elluminate's AgentTrialResult, plus ``epoch`` and ids)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    task_name: str = Field(min_length=1)
    """Name of the task the agent attempted; matched against the collection's tasks."""
    trajectory: dict[str, Any] | str | None = None
    """The ATIF trajectory inline, or a path relative to the trials file; None when the run produced none."""
    reward: float | dict[str, float] | None = None
    """Reward in [0, 1], or named rewards (any real numbers)."""
    steps: int | None = Field(default=None, ge=0)
    """Number of trajectory steps."""
    cost_usd: float | None = Field(default=None, ge=0)
    """Cost of the agent's LLM calls in US dollars."""
    duration_seconds: float | None = Field(default=None, ge=0)
    """Wall time of the attempt."""
    input_tokens: int | None = Field(default=None, ge=0)
    """Input tokens of the agent, cached ones included."""
    output_tokens: int | None = Field(default=None, ge=0)
    """Output tokens of the agent."""
    cached_tokens: int | None = Field(default=None, ge=0)
    """Part of ``input_tokens`` served from a cache."""
    error: str | None = None
    """Why the attempt failed, if it did (exception type and message)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data: source format, source path, source ids, and anything custom."""
    messages: list[dict[str, Any]] | None = None
    """Final conversation in OpenAI chat format."""
    criterion_ratings: list[CriterionRating] = Field(default_factory=list)
    """Ratings that came with the trial; stored as given and never re-judged."""
    epoch: int = Field(default=1, ge=1)
    """Repetition number when a task is attempted several times."""
    trial_id: str | None = None
    """Id the runner gave this attempt; part of the trial key when present."""

    @field_validator("reward")
    @classmethod
    def _reward_range(cls, v: Any) -> Any:
        if isinstance(v, float):
            if math.isnan(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"reward {v} is outside [0, 1]; use named rewards (a dict) for other scales")
        elif isinstance(v, dict):
            for name, val in v.items():
                if isinstance(val, float) and (math.isnan(val) or math.isinf(val)):
                    raise ValueError(f"reward {name!r} is not a finite number")
        return v

    def primary_reward(self) -> float | None:
        """The reward as one number: the float itself, or the primary named reward.

        For named rewards the primary is the one ``metadata.primary_reward`` names (adapters
        record the runner's choice there), else the one called ``reward``, else the first
        in the order the runner wrote them.
        """
        if isinstance(self.reward, dict):
            if not self.reward:
                return None
            name = self.metadata.get("primary_reward")
            if isinstance(name, str) and name in self.reward:  # the runner's choice
                return float(self.reward[name])
            return float(self.reward.get("reward", next(iter(self.reward.values()))))
        return self.reward


def trajectory_totals(traj: dict[str, Any]) -> dict[str, Any]:
    """Steps, tokens and cost of a trajectory: ``final_metrics`` when given, else step sums."""
    steps = traj.get("steps") or []
    fm = traj.get("final_metrics") or {}
    sums: dict[str, float] = {}
    for s in steps:
        m = s.get("metrics") if isinstance(s, dict) else None
        if isinstance(m, dict):
            for k in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd"):
                v = m.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    sums[k] = sums.get(k, 0) + v

    def pick(total: str, step: str) -> Any:
        v = fm.get(total)
        return v if v is not None else sums.get(step)

    cost = pick("total_cost_usd", "cost_usd")
    tokens = {k: pick(f"total_{k}", k) for k in ("prompt_tokens", "completion_tokens", "cached_tokens")}
    return {
        "steps": fm.get("total_steps") if fm.get("total_steps") is not None else len(steps),
        "input_tokens": int(tokens["prompt_tokens"]) if tokens["prompt_tokens"] is not None else None,
        "output_tokens": int(tokens["completion_tokens"]) if tokens["completion_tokens"] is not None else None,
        "cached_tokens": int(tokens["cached_tokens"]) if tokens["cached_tokens"] is not None else None,
        "cost_usd": float(cost) if cost is not None else None,
    }


def content_text(content: Any) -> str:
    """Plain text of a message or observation: the string, or the text parts of a content list
    (media parts as ``[image: path]``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") == "text":
                    out.append(part.get("text") or "")
                elif isinstance(part.get("source"), dict):
                    out.append(f"[{part.get('type')}: {part['source'].get('path')}]")
        return "\n".join(out)
    return "" if content is None else str(content)


def trajectory_messages(traj: dict[str, Any], *, skip_copied: bool = False) -> list[dict[str, Any]]:
    """The trajectory as an OpenAI chat-format message list (tool results as ``tool`` messages)."""
    import orjson

    messages: list[dict[str, Any]] = []
    for s in traj.get("steps") or []:
        if not isinstance(s, dict) or (skip_copied and s.get("is_copied_context")):
            continue
        source = s.get("source")
        role = {"agent": "assistant", "user": "user", "system": "system"}.get(str(source), "user")
        msg: dict[str, Any] = {"role": role, "content": content_text(s.get("message"))}
        calls = s.get("tool_calls") or []
        if calls:
            msg["tool_calls"] = [
                {
                    "id": c.get("tool_call_id"),
                    "type": "function",
                    "function": {
                        "name": c.get("function_name"),
                        "arguments": orjson.dumps(c.get("arguments") or {}, option=orjson.OPT_SORT_KEYS).decode(),
                    },
                }
                for c in calls
                if isinstance(c, dict)
            ]
        messages.append(msg)
        obs = s.get("observation") or {}
        for r in obs.get("results") or []:
            if not isinstance(r, dict):
                continue
            if r.get("source_call_id"):
                messages.append({"role": "tool", "tool_call_id": r["source_call_id"], "content": content_text(r.get("content"))})
            elif r.get("content") is not None:
                messages.append({"role": "user", "content": content_text(r.get("content"))})
    return messages


@dataclass(slots=True)
class Converted:
    """One converted trial: an ATIF v1.8 document (or None when the run produced none) and its record.

    ``trial.trajectory`` is left None; the writer fills in the file path.
    ``trial_key`` names the output file (``OUT/trajectories/<task>/<trial_key>.json``) and must be
    stable across runs on the same input.
    """

    trajectory: dict[str, Any] | None
    trial: Trial
    trial_key: str
    source: str
    warnings: list[str] = field(default_factory=list)
    instruction: str | None = None
    """Task instruction text, when the source has it."""
    raw: bytes | None = None
    """The trajectory's bytes exactly as read, when they came from a file (stored verbatim)."""
    base_dir: str | None = None
    """Folder that relative trajectory references (``trajectory_path``) resolve against."""
    validated: bool = False
    """True when ``trajectory`` was already validated in strict mode."""
    tally: dict[str, Any] | None = None
    """What was read from the source for this trial: ``read``, ``mapped`` and ``skipped`` record
    counts and ``skip_reasons`` (reason -> count); None when the adapter does not count."""
    input_key: str | None = None
    """Hash (xxh3, 128 bits) of the trials-file line this trial was read from (None for other
    inputs): stored, so that a re-upload of the same line is recognised without parsing it."""
    input_file: str | None = None
    """The trajectory file that line names, as written in the line."""
    input_file_key: str | None = None
    """Hash (xxh3, 128 bits) of that file's bytes."""
    input_file_stat: str | None = None
    """That file's identity and change times when it was read (``dev:ino:size:mtime_ns:ctime_ns``),
    when it had not changed for a while (see :func:`atif.adapters.sources.file_stat`)."""


@dataclass(slots=True)
class Unchanged:
    """A trial recognised as already stored from its input bytes alone (a re-upload): nothing was parsed."""

    source: str
    trial_id: str
    record_hash: str
    task_name: str
    epoch: int
    instruction: str | None = None


@dataclass(slots=True)
class Failure:
    """An input (or one record of it) that could not be converted, with a one-line reason."""

    source: str
    reason: str
    skipped: bool = False
    """True for inputs passed over on purpose (e.g. a half-written Harbor trial), reported as warnings."""
