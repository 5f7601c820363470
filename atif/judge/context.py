"""Template variables for one trial x criterion, built from the stored trial and its trajectory.

Everything that comes from runner output is untrusted: an agent, a tool or a web page may have
written text meant for the judge, and the task's name and instruction come from the same files.
So every such text is *neutralised* (no run of three angle brackets survives, look-alikes and
brackets split by invisible characters included, so nothing inside can forge the ``<<<…>>>``
markers) and shown only inside a frame keyed by a hash of the trial's content: the task in
``<<<TASK id>>> … <<<END TASK id>>>``, the steps in::

    <<<TRANSCRIPT 3f9ac2d1>>>
    <<<step 2 | user>>>
    Create a file called hello.txt ...
    <<<step 5 | agent | gpt-4o>>>
    I created the file.
    <<<tool call call_1 | write_file>>>
    {"path": "hello.txt", "text": "Hello"}
    <<<tool result call_1>>>
    File written.
    <<<END TRANSCRIPT 3f9ac2d1>>>

Elision markers carry the same id (``[… 7 steps elided 3f9ac2d1 …]``), so text that only looks
like one is told apart.

Variables (Adaptive's AI-judge set, then atif's):

``completion``, ``last_user_turn_content``, ``context_str``, ``context_str_without_last_user``,
``turns``, ``context_turns``, ``context_turns_without_last_user``, ``metadata``,
``output_schema``, ``template_variables``, ``criteria`` (the question text), and ``task``
(name, instruction, tags), ``criterion`` (label, question, kind), ``steps`` (each with its tool
calls and observations), ``transcript``, ``task_block`` (the task's name and instruction in their
frame), ``final_metrics``, ``trial``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atif.judge.verdict import OUTPUT_SCHEMA

__all__ = [
    "VARIABLES",
    "StepView",
    "TrialContext",
    "elision_marker",
    "neutralise",
    "render_task",
    "render_transcript",
    "step_views",
    "template_variables",
    "trial_context",
    "turns_of",
]

VARIABLES = frozenset(
    {
        "completion", "last_user_turn_content", "context_str", "context_str_without_last_user", "turns",
        "context_turns", "context_turns_without_last_user", "metadata", "output_schema", "template_variables",
        "criteria", "task", "criterion", "steps", "transcript", "task_block", "final_metrics", "trial",
    }
)
"""Every variable a judge template may use."""

OUTPUT_SCHEMA_TEXT = json.dumps(OUTPUT_SCHEMA, indent=2)

# Angle brackets and the characters that look like them (their NFKC forms, and confusables NFKC
# leaves alone), with how many brackets each shows.
_WEIGHT = {c: 1 for c in "<‹«＜﹤〈〈⟨⟪《˂˱❮❬❰ᐸ⧼>›»＞﹥〉〉⟩⟫》˃˲❯❭❱ᐳ⧽"}
_WEIGHT.update({"≪": 2, "⪡": 2, "⋘": 3, "≫": 2, "⪢": 2, "⋙": 3})
_LEFT = "<‹«＜﹤〈〈⟨⟪《˂˱❮❬❰ᐸ⧼≪⪡⋘"
_RIGHT = ">›»＞﹥〉〉⟩⟫》˃˲❯❭❱ᐳ⧽≫⪢⋙"
# Invisible between brackets: zero-width and joiner characters, variation selectors, combining marks.
_INVISIBLE = "\u00ad\u034f\u180e\u200b-\u200d\u2060-\u2064\ufeff\ufe00-\ufe0f\u0300-\u036f\u20d0-\u20ff\ufe20-\ufe2f"
# Bidi controls reorder what a reader sees; they go everywhere.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BRACKET = re.compile(f"[{_LEFT}{_RIGHT}]")
_RUN = re.compile(f"[{_LEFT}](?:[{_INVISIBLE}]*[{_LEFT}])+|[{_RIGHT}](?:[{_INVISIBLE}]*[{_RIGHT}])+")


def _spread(match: re.Match[str]) -> str:
    # "<<<" becomes "< < <": visible to the judge, and never three brackets in a row.
    run = match.group(0)
    brackets = [c for c in run if c in _WEIGHT]
    if sum(_WEIGHT[c] for c in brackets) < 3:
        return run
    plain = "<" if run[0] in _LEFT else ">"
    return " ".join(plain for _ in brackets)


def neutralise(text: str) -> str:
    """Untrusted text with every delimiter look-alike broken up (``<<<`` becomes ``< < <``).

    Checked as a reader would see it: bidi controls are removed, brackets separated only by
    invisible characters count as a run, and so do look-alikes (NFKC forms and confusables).
    """
    if not text:
        return text
    if not text.isascii() and _BIDI.search(text):
        text = _BIDI.sub("", text)
    if _BRACKET.search(text):
        text = _RUN.sub(_spread, text)
    return text


def _one_line(text: str) -> str:
    """Runner text that goes into a structure line: whitespace (newlines too) as single spaces."""
    return " ".join(text.split())


def elision_marker(count: int, unit: str, frame_id: str = "") -> str:
    """The visible mark of a cut: ``[… 7 steps elided 3f9ac2d1 …]`` (the frame's id, when known)."""
    return f"[… {count} {unit} elided {frame_id} …]" if frame_id else f"[… {count} {unit} elided …]"


def _neutralise_value(value: Any) -> Any:
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, dict):
        return {k: _neutralise_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutralise_value(v) for v in value]
    return value


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict):
                parts.append(str(part))
            elif part.get("type") == "text":
                parts.append(str(part.get("text") or ""))
            else:
                source = part.get("source")
                path = source.get("path", "?") if isinstance(source, dict) else "?"
                parts.append(f"[{part.get('type', 'part')}: {path}]")
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False, sort_keys=True)


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(slots=True)
class StepView:
    """One step as the judge sees it: plain, neutralised text; or a marker for elided steps."""

    step_id: int | None
    """The ATIF step id (None for an elision marker)."""
    source: str
    """``system``, ``user``, ``agent``, ``elided``, or ``summary`` (atif's note on the steps judged
    in other segments)."""
    message: str = ""
    reasoning: str | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    """``{tool_call_id, function_name, arguments}``, arguments as JSON text."""
    observations: list[dict[str, str | None]] = field(default_factory=list)
    """``{source_call_id, content}``."""
    timestamp: str | None = None
    model_name: str | None = None
    subagent: str | None = None
    """Label of the subagent trajectory the step belongs to (None for the root)."""
    is_copied_context: bool = False
    elided_steps: int = 0
    """For an elision marker: how many steps it stands for."""

    def as_dict(self) -> dict[str, Any]:
        """The step as a template sees it in ``steps``."""
        return {
            "step_id": self.step_id,
            "source": self.source,
            "message": self.message,
            "reasoning": self.reasoning,
            "tool_calls": self.tool_calls,
            "observations": self.observations,
            "timestamp": self.timestamp,
            "model_name": self.model_name,
            "subagent": self.subagent,
            "is_copied_context": self.is_copied_context,
            "elided_steps": self.elided_steps,
        }


def _views(traj: Mapping[str, Any], subagent: str | None, out: list[StepView]) -> None:
    for step in traj.get("steps") or []:
        if not isinstance(step, dict):
            continue
        calls = []
        for c in step.get("tool_calls") or []:
            if isinstance(c, dict):
                calls.append({
                    "tool_call_id": _one_line(neutralise(str(c.get("tool_call_id") or ""))),
                    "function_name": _one_line(neutralise(str(c.get("function_name") or ""))),
                    "arguments": neutralise(_arguments(c.get("arguments"))),
                })
        observations = []
        obs = step.get("observation")
        for r in (obs.get("results") if isinstance(obs, dict) else None) or []:
            if isinstance(r, dict):
                sid = r.get("source_call_id")
                observations.append({
                    "source_call_id": _one_line(neutralise(str(sid))) if sid is not None else None,
                    "content": neutralise(_text(r.get("content"))),
                })
        step_id = step.get("step_id")
        reasoning = step.get("reasoning_content")
        out.append(StepView(
            step_id=step_id if isinstance(step_id, int) and not isinstance(step_id, bool) else None,
            source=_one_line(neutralise(str(step.get("source") or "?"))),
            message=neutralise(_text(step.get("message"))),
            reasoning=neutralise(reasoning) if isinstance(reasoning, str) and reasoning else None,
            tool_calls=calls,
            observations=observations,
            timestamp=step.get("timestamp") if isinstance(step.get("timestamp"), str) else None,
            model_name=_one_line(neutralise(step["model_name"])) if isinstance(step.get("model_name"), str) else None,
            subagent=subagent,
            is_copied_context=bool(step.get("is_copied_context")),
        ))
    for i, sub in enumerate(traj.get("subagent_trajectories") or []):
        if isinstance(sub, dict):
            agent = sub.get("agent")
            name = agent.get("name") if isinstance(agent, dict) else None
            label = f"{subagent}/" if subagent else ""
            label += f"subagent {i + 1}" + (f" ({_one_line(neutralise(str(name)))})" if name else "")
            _views(sub, label, out)


def step_views(trajectory: Mapping[str, Any] | None) -> list[StepView]:
    """The steps of a trajectory (subagent steps after the root's, labelled), neutralised."""
    out: list[StepView] = []
    if trajectory:
        _views(trajectory, None, out)
    return out


def _header(v: StepView) -> str:
    if v.elided_steps:
        return ""
    if v.source == "summary":
        # Written by atif from already neutralised step text (segmented judging).
        return "<<<summary by atif>>>"
    where = f"{v.subagent} step" if v.subagent else "step"
    bits = [f"{where} {v.step_id if v.step_id is not None else '?'}", v.source]
    if v.model_name and v.source == "agent":
        bits.append(v.model_name)
    if v.is_copied_context:
        bits.append("copied context")
    return "<<<" + " | ".join(bits) + ">>>"


def _body(views: Sequence[StepView], frame_id: str) -> str:
    lines: list[str] = []
    for v in views:
        if v.elided_steps:
            lines.append(elision_marker(v.elided_steps, "steps", frame_id))
            continue
        lines.append(_header(v))
        if v.message:
            lines.append(v.message)
        if v.reasoning:
            lines.append("<<<reasoning>>>")
            lines.append(v.reasoning)
        for c in v.tool_calls:
            lines.append(f"<<<tool call {c['tool_call_id']} | {c['function_name']}>>>")
            lines.append(c["arguments"])
        for o in v.observations:
            sid = o.get("source_call_id")
            lines.append(f"<<<tool result {sid}>>>" if sid else "<<<observation>>>")
            lines.append(o.get("content") or "")
    return "\n".join(lines)


def _digest(*parts: str) -> str:
    blob = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()[:8]


def render_transcript(views: Sequence[StepView], frame_id: str | None = None) -> str:
    """The steps as one delimited text block; the frame's id is ``frame_id`` or a hash of the steps."""
    if frame_id is None:
        frame_id = _digest(_body(views, ""))
    body = _body(views, frame_id)
    return f"<<<TRANSCRIPT {frame_id}>>>\n{body}\n<<<END TRANSCRIPT {frame_id}>>>"


def render_task(task: Mapping[str, Any], frame_id: str) -> str:
    """The task's name and instruction (both untrusted) as one delimited block."""
    lines = [f"<<<TASK {frame_id}>>>"]
    if task.get("name"):
        lines.append(f"name: {task['name']}")
    if task.get("instruction"):
        lines.append(str(task["instruction"]))
    lines.append(f"<<<END TASK {frame_id}>>>")
    return "\n".join(lines)


_ROLES = {"system": "system", "user": "user", "agent": "assistant"}


def turns_of(views: Sequence[StepView], frame_id: str = "") -> list[dict[str, str]]:
    """Adaptive-style ``{role, content}`` turns: tool calls folded into the assistant turn, results as ``tool``."""
    turns: list[dict[str, str]] = []
    for v in views:
        if v.elided_steps:
            turns.append({"role": "elided", "content": elision_marker(v.elided_steps, "steps", frame_id)})
            continue
        content = v.message
        if v.tool_calls:
            calls = "\n".join(f"[tool call {c['function_name']}] {c['arguments']}" for c in v.tool_calls)
            content = f"{content}\n{calls}" if content else calls
        turns.append({"role": _ROLES.get(v.source, v.source), "content": content})
        for o in v.observations:
            turns.append({"role": "tool", "content": o.get("content") or ""})
    return turns


def _context_str(turns: Sequence[Mapping[str, str]]) -> str:
    return "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)


def _last_index(turns: Sequence[Mapping[str, str]], role: str) -> int | None:
    for i in range(len(turns) - 1, -1, -1):
        if turns[i]["role"] == role:
            return i
    return None


@dataclass(slots=True)
class TrialContext:
    """What the judge knows about one trial; built once, shared by all its criteria."""

    trial_id: str
    task: dict[str, Any]
    trial: dict[str, Any]
    metadata: dict[str, Any]
    final_metrics: dict[str, Any] | None
    views: list[StepView]
    """The full, unelided steps."""
    step_ids: set[int]
    """Every step id of the root trajectory (for checking cited steps)."""
    trajectory: dict[str, Any] | None = None
    """The parsed trajectory (for function and match criteria)."""
    _derived: dict[int, dict[str, Any]] = field(default_factory=dict)
    _frame_id: str | None = None

    @property
    def frame_id(self) -> str:
        """The id of this trial's frames and elision markers: a hash of its task and full steps.

        Untrusted text cannot contain it: the text is part of what is hashed.
        """
        if self._frame_id is None:
            self._frame_id = _digest(str(self.task.get("name") or ""), str(self.task.get("instruction") or ""),
                                     _body(self.views, ""))
        return self._frame_id

    def derived(self, views: Sequence[StepView]) -> dict[str, Any]:
        """Variables that depend only on the (possibly elided) steps; computed once per step list."""
        key = id(views)
        cached = self._derived.get(key)
        if cached is not None and cached["_views"] is views:
            return cached
        turns = turns_of(views, self.frame_id)
        done = _last_index(turns, "assistant")
        completion = turns[done]["content"] if done is not None else ""
        context = [t for i, t in enumerate(turns) if i != done]
        last_user = _last_index(context, "user")
        without_user = [t for i, t in enumerate(context) if i != last_user]
        out = {
            "_views": views,
            "transcript": render_transcript(views, self.frame_id),
            "steps": [v.as_dict() for v in views],
            "turns": turns,
            "completion": completion,
            "context_turns": context,
            "context_turns_without_last_user": without_user,
            "last_user_turn_content": context[last_user]["content"] if last_user is not None else "",
            "context_str": _context_str(context),
            "context_str_without_last_user": _context_str(without_user),
        }
        if len(self._derived) > 4:
            self._derived.clear()
        self._derived[key] = out
        return out


_TRIAL_FIELDS = ("trial_id", "task_name", "epoch", "reward", "rewards", "steps", "cost_usd", "duration_seconds",
                 "input_tokens", "output_tokens", "cached_tokens", "error", "agent_name", "model_name",
                 "source_trial_id", "experiment")


def trial_context(record: Mapping[str, Any]) -> TrialContext:
    """A :class:`TrialContext` from ``Store.trial()``'s record (trajectory parsed, task joined)."""
    trajectory = record.get("trajectory")
    if not isinstance(trajectory, dict):
        trajectory = None
    task = record.get("task") or {"name": record.get("task_name")}
    task = {
        "name": _one_line(neutralise(str(task.get("name") or record.get("task_name") or ""))),
        "instruction": neutralise(task["instruction"]) if isinstance(task.get("instruction"), str) else None,
        "tags": list(task.get("tags") or []),
    }
    trial = {k: record.get(k) for k in _TRIAL_FIELDS if k in record}
    trial = _neutralise_value(trial)
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    final_metrics = trajectory.get("final_metrics") if trajectory else None
    views = step_views(trajectory)
    ids = {s["step_id"] for s in (trajectory or {}).get("steps") or []
           if isinstance(s, dict) and isinstance(s.get("step_id"), int)}
    return TrialContext(
        trial_id=str(record.get("trial_id")),
        task=task,
        trial=trial,
        metadata=_neutralise_value(metadata),
        final_metrics=final_metrics if isinstance(final_metrics, dict) else None,
        views=views,
        step_ids=ids,
        trajectory=trajectory,
    )


def template_variables(
    ctx: TrialContext,
    criterion: Mapping[str, Any],
    *,
    views: Sequence[StepView] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every template variable for ``criterion`` on this trial (``views``: the fitted steps)."""
    derived = ctx.derived(views if views is not None else ctx.views)
    variables = {k: v for k, v in derived.items() if k != "_views"}
    variables.update(
        metadata=ctx.metadata,
        output_schema=OUTPUT_SCHEMA_TEXT,
        template_variables=dict(extra or {}),
        criteria=criterion.get("question", ""),
        task=ctx.task,
        task_block=render_task(ctx.task, ctx.frame_id),
        criterion={"label": criterion.get("label"), "question": criterion.get("question"),
                   "kind": criterion.get("kind", "llm")},
        final_metrics=ctx.final_metrics,
        trial=ctx.trial,
    )
    return variables
