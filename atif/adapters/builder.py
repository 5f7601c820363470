"""Building ATIF: :class:`TrajectoryBuilder`, the tool-call helper and :func:`make_trial`.

Adapters turn a runner's output into an ATIF v1.8 dict with :class:`TrajectoryBuilder`
(sequential step ids, tool results merged into the agent step that made the call,
final metrics summed from step metrics) and into a :class:`~atif.trial.Trial` with
:func:`make_trial` (totals and OpenAI-format messages taken from the trajectory).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from atif.adapters.values import iso_timestamp, parse_arguments, text_of, without_none
from atif.trial import Trial, trajectory_messages, trajectory_totals

__all__ = ["ATIF_VERSION", "TrajectoryBuilder", "make_trial", "tool_call"]

ATIF_VERSION = "ATIF-v1.8"
"""The version every adapter writes."""

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def tool_call(call_id: Any, name: Any, arguments: Any, *, extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
    """An ATIF ToolCall dict and an optional warning (arguments are parsed with :func:`parse_arguments`).

    A parse warning is also recorded in the call's ``extra.warnings``.
    """
    args, warning = parse_arguments(arguments)
    call: dict[str, Any] = {
        "tool_call_id": str(call_id) if call_id not in (None, "") else "",
        "function_name": str(name) if name not in (None, "") else "unknown",
        "arguments": args,
    }
    ext = dict(extra) if extra else {}
    if warning:
        ext.setdefault("warnings", []).append(warning)
    if ext:
        call["extra"] = ext
    return call, warning


def _metrics(m: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not m:
        return None
    out = without_none(dict(m))
    return out or None


class TrajectoryBuilder:
    """Accumulates ATIF steps in order and builds a v1.8 trajectory dict.

    Step ids are assigned sequentially from 1. Tool results are attached with
    :meth:`observe` to the agent step whose ``tool_calls`` hold the call id, so a
    tool message never becomes a step of its own. Warnings collected along the
    way are in :attr:`warnings`.
    """

    def __init__(
        self,
        *,
        agent_name: str,
        agent_version: str = "unknown",
        model_name: str | None = None,
        session_id: str | None = None,
        trajectory_id: str | None = None,
        tool_definitions: list[dict[str, Any]] | None = None,
        agent_extra: dict[str, Any] | None = None,
    ) -> None:
        self.agent: dict[str, Any] = without_none(
            {
                "name": agent_name,
                "version": agent_version,
                "model_name": model_name,
                "tool_definitions": tool_definitions or None,
                "extra": agent_extra or None,
            }
        )
        self.session_id = session_id
        self.trajectory_id = trajectory_id
        self.steps: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._owner: dict[str, dict[str, Any]] = {}
        self._seen_call_ids: set[str] = set()
        self.read = 0
        """Source records (messages, events, spans) read so far; see :meth:`count` and :meth:`skip`."""
        self.skips: dict[str, int] = {}
        """Reason -> number of source records passed over for it."""

    def __len__(self) -> int:
        return len(self.steps)

    def count(self, n: int = 1) -> None:
        """Record that ``n`` source records were read (and mapped, unless :meth:`skip` says otherwise)."""
        self.read += n

    def skip(self, reason: str, where: str | None = None) -> None:
        """Record one source record read but not mapped, for ``reason`` (a short rule, e.g.
        ``"unknown record type 'x'"``); ``where`` (e.g. ``"line 7"``) goes into the warning."""
        self.read += 1
        self.skips[reason] = self.skips.get(reason, 0) + 1
        self.warnings.append(f"{where}: {reason}; skipped" if where else f"{reason}; skipped")

    def tally(self) -> dict[str, Any] | None:
        """The accounting of this conversion (see ``Converted.tally``), or None when nothing was counted."""
        if not self.read:
            return None
        skipped = sum(self.skips.values())
        return {"read": self.read, "mapped": self.read - skipped, "skipped": skipped,
                "skip_reasons": dict(sorted(self.skips.items()))}

    def _add(self, step: dict[str, Any]) -> dict[str, Any]:
        step["step_id"] = len(self.steps) + 1
        self.steps.append(step)
        return step

    def system(self, message: Any, *, timestamp: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append a system step."""
        return self._add(without_none({"source": "system", "message": _message(message),
                                 "timestamp": iso_timestamp(timestamp), "extra": extra or None}))

    def user(self, message: Any, *, timestamp: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append a user step."""
        return self._add(without_none({"source": "user", "message": _message(message),
                                 "timestamp": iso_timestamp(timestamp), "extra": extra or None}))

    def agent_step(
        self,
        message: Any = "",
        *,
        timestamp: Any = None,
        model_name: str | None = None,
        reasoning_content: str | None = None,
        reasoning_effort: str | float | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        metrics: Mapping[str, Any] | None = None,
        llm_call_count: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append an agent step; its tool calls become owners of later :meth:`observe` results.

        A missing or repeated tool_call_id is replaced by a deterministic one (ATIF needs
        them unique within a trajectory) and a warning is recorded.
        """
        step = self._add(
            without_none(
                {
                    "source": "agent",
                    "message": _message(message),
                    "timestamp": iso_timestamp(timestamp),
                    "model_name": model_name or None,
                    "reasoning_content": reasoning_content or None,
                    "reasoning_effort": reasoning_effort,
                    "metrics": _metrics(metrics),
                    "llm_call_count": llm_call_count,
                    "extra": extra or None,
                }
            )
        )
        for c in tool_calls or []:
            self.add_tool_call(step, dict(c))
        return step

    def add_tool_call(self, step: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
        """Add one more tool call to an existing agent step (e.g. parallel calls arriving as separate items).

        The call id gets the same uniqueness treatment as in :meth:`agent_step`.
        """
        cid = call.get("tool_call_id") or ""
        if not cid or cid in self._seen_call_ids:
            new = f"call_{step['step_id']}_{len(step.get('tool_calls') or []) + 1}"
            while new in self._seen_call_ids:
                new += "_"
            if cid:
                self.warnings.append(f"duplicate tool_call_id {cid!r} renamed to {new!r}")
                call["extra"] = {**(call.get("extra") or {}), "original_tool_call_id": cid}
            call["tool_call_id"] = cid = new
        self._seen_call_ids.add(cid)
        step.setdefault("tool_calls", []).append(call)
        self._owner[cid] = step
        return call

    def tool_call(
        self, call_id: Any, name: Any, arguments: Any, *, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An ATIF ToolCall dict (see :func:`tool_call`); an arguments warning goes to :attr:`warnings`."""
        call, warning = tool_call(call_id, name, arguments, extra=extra)
        if warning:
            self.warnings.append(f"tool call {call['tool_call_id'] or name!r}: {warning}")
        return call

    def owner_of(self, call_id: str) -> dict[str, Any] | None:
        """The agent step whose tool calls hold ``call_id``, if any."""
        return self._owner.get(call_id)

    def observe(self, call_id: Any, content: Any, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Attach a tool result to the agent step that made the call; return the ObservationResult.

        A result whose call id matches no earlier tool call is attached to the latest step
        without ``source_call_id`` (ATIF requires it to name a call of the same step); the
        id is kept in ``extra.unmatched_call_id`` and a warning is recorded.
        """
        cid = str(call_id) if call_id not in (None, "") else None
        result: dict[str, Any] = {"content": _content(content)}
        ext = dict(extra) if extra else {}
        step = self._owner.get(cid) if cid else None
        if step is not None:
            result["source_call_id"] = cid
        else:
            if not self.steps:
                self.user("")
            step = self.steps[-1]
            if cid:
                ext["unmatched_call_id"] = cid
                self.warnings.append(f"tool result for unknown call id {cid!r} attached to step {step['step_id']}")
        if ext:
            result["extra"] = ext
        step.setdefault("observation", {"results": []})["results"].append(result)
        return result

    def build(
        self,
        *,
        notes: str | None = None,
        extra: dict[str, Any] | None = None,
        final_metrics: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The trajectory dict (ATIF-v1.8).

        ``final_metrics`` defaults to the sums of the step metrics (only the totals some
        step reports) plus ``total_steps``. A trajectory needs at least one step; an empty
        one gets a single empty user step and a warning.
        """
        if not self.steps:
            self.warnings.append("the source has no messages; wrote one empty user step")
            self.user("")
        if final_metrics is None:
            sums: dict[str, float] = {}
            for s in self.steps:
                for k, v in (s.get("metrics") or {}).items():
                    if k in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd") and isinstance(
                        v, (int, float)
                    ):
                        sums[k] = sums.get(k, 0) + v
            fm: dict[str, Any] = {f"total_{k}": v for k, v in sums.items()}
            if "total_cost_usd" in fm:
                fm["total_cost_usd"] = round(float(fm["total_cost_usd"]), 10)
            fm["total_steps"] = len(self.steps)
        else:
            fm = without_none(dict(final_metrics))
        traj: dict[str, Any] = {
            "schema_version": ATIF_VERSION,
            "agent": self.agent,
            "steps": self.steps,
        }
        if self.session_id is not None:
            traj["session_id"] = str(self.session_id)
        if self.trajectory_id is not None:
            traj["trajectory_id"] = str(self.trajectory_id)
        if notes:
            traj["notes"] = notes
        if fm:
            traj["final_metrics"] = fm
        if extra:
            traj["extra"] = extra
        return traj


def _message(message: Any) -> str | list[dict[str, Any]]:
    if isinstance(message, list) and all(isinstance(p, dict) and p.get("type") in ("text", "image", "audio")
                                         for p in message) and message:
        return message
    return text_of(message)


def _content(content: Any) -> str | list[dict[str, Any]] | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
        isinstance(p, dict) and p.get("type") in ("text", "image", "audio") and set(p) <= {"type", "text", "source"}
        for p in content
    ) and any(p.get("type") != "text" for p in content):
        return content
    if isinstance(content, (list, Mapping)) and not isinstance(content, str):
        text = text_of(content)
        if text or not content:
            return text
        return orjson.dumps(content, option=_SORTED, default=str).decode()
    return str(content)


def make_trial(
    trajectory: dict[str, Any] | None,
    *,
    task_name: str,
    source_format: str,
    source_path: str,
    source_ids: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    reward: float | dict[str, float] | None = None,
    error: str | None = None,
    duration_seconds: float | None = None,
    totals: Mapping[str, Any] | None = None,
    trial_id: str | None = None,
    epoch: int = 1,
    criterion_ratings: list[Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> Trial:
    """A :class:`Trial` for one converted trajectory.

    Steps, tokens and cost come from the trajectory (``final_metrics``, else step sums);
    entries of ``totals`` that are not None override them (e.g. a runner's own counts).
    ``messages`` defaults to the trajectory as OpenAI chat messages. ``metadata`` gets
    ``source_format``, ``source_path`` and ``source_ids``.
    """
    base: dict[str, Any] = trajectory_totals(trajectory) if trajectory is not None else {}
    for k, v in (totals or {}).items():
        if v is not None:
            base[k] = v
    meta: dict[str, Any] = {"source_format": source_format, "source_path": source_path}
    ids = without_none(dict(source_ids or {}))
    if ids:
        meta["source_ids"] = ids
    meta.update(metadata or {})
    if messages is None and trajectory is not None:
        messages = trajectory_messages(trajectory)
    return Trial(
        task_name=task_name,
        reward=reward,
        steps=base.get("steps"),
        cost_usd=base.get("cost_usd"),
        duration_seconds=duration_seconds,
        input_tokens=base.get("input_tokens"),
        output_tokens=base.get("output_tokens"),
        cached_tokens=base.get("cached_tokens"),
        error=error,
        metadata=meta,
        messages=messages,
        criterion_ratings=criterion_ratings or [],
        epoch=epoch,
        trial_id=trial_id,
    )
