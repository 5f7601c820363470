"""SWE-agent ``.traj`` files and mini-SWE-agent ``.traj.json`` files.

**mini-SWE-agent** (``{"info", "messages", "trajectory_format": "mini-swe-agent-1*"}``): ``messages``
is the agent's chat history. ``system`` / ``user`` / ``assistant`` / ``tool`` map as OpenAI chat
messages (``tool_calls`` -> tool calls, ``tool`` messages -> observations). In the text-based
format (no ``tool_calls``), the bash block of an assistant message is its ``bash`` tool call and
the next user message (``<returncode>...``) its observation. The final ``exit`` message holds the
exit status and submission: its content answers the last unanswered call (the submit command),
else it is a system step. Each message's ``extra.cost`` -> the step's ``cost_usd``.

**SWE-agent** (``{"trajectory": [...], "history": [...], "info": {...}}``): ``history`` is the
conversation the model saw. Demonstration messages (``is_demo``) are counted as skipped; an
assistant message's ``tool_calls`` (function-calling agents) or its ``action`` (text-based agents:
a tool call named after the command's first word, arguments ``{"command": action}``) are tool
calls; ``tool`` messages and ``observation`` user messages are their results; ``thought`` is
kept when it differs from the message. ``info.model_stats`` (``tokens_sent``, ``tokens_received``,
``instance_cost``) gives the trial's totals.

Both: ``info.exit_status`` and ``info.submission`` go into the trial's metadata, and an exit
status other than ``submitted`` is its ``error``. Task name: the file name without ``.traj`` /
``.traj.json`` (the instance id in SWE-bench runs); trial key the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import load_json_cached, sniff_json
from atif.adapters.values import obj, text_of
from atif.errors import AtifError

__all__ = ["SweAgentAdapter"]

_BASH = re.compile(r"```(?:bash|sh)?\s*\n(.*?)\n```", re.DOTALL)


def _kind(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    if str(doc.get("trajectory_format", "")).startswith("mini-swe-agent") and isinstance(doc.get("messages"), list):
        return "mini-swe-agent"
    if isinstance(doc.get("history"), list) and isinstance(doc.get("trajectory"), list) and isinstance(doc.get("info"), dict):
        return "swe-agent"
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".traj.json", ".traj", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem


class SweAgentAdapter:
    """SWE-agent and mini-SWE-agent trajectories."""

    name = "swe-agent"
    description = "SWE-agent .traj and mini-SWE-agent .traj.json trajectories"

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.traj`` / ``.json`` file with SWE-agent's or mini-SWE-agent's top-level keys."""
        if not path.is_file() or path.suffix.lower() not in (".traj", ".json"):
            return Sniff(False, "not a .traj or .json file")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        kind = _kind(doc)
        if kind == "mini-swe-agent":
            return Sniff(True, f"a mini-SWE-agent trajectory (trajectory_format {doc['trajectory_format']})")
        if kind == "swe-agent":
            return Sniff(True, "a SWE-agent trajectory (trajectory, history, info)")
        return Sniff(False, "neither mini-SWE-agent (trajectory_format, messages) nor SWE-agent (trajectory, history, info)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per file."""
        try:
            doc = load_json_cached(path)
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        kind = _kind(doc)
        if kind is None:
            yield Failure(str(path), "not a SWE-agent or mini-SWE-agent trajectory")
            return
        info = obj(doc.get("info"))
        stats = obj(info.get("model_stats"))
        config = obj(info.get("config"))
        model = obj(config.get("model")).get("model_name") or obj(obj(doc.get("replay_config")).get("agent")).get("model")
        if kind == "mini-swe-agent":
            b = TrajectoryBuilder(agent_name="mini-swe-agent", agent_version=str(info.get("mini_version") or "unknown"),
                                  model_name=model if isinstance(model, str) else None)
            _mini(b, doc["messages"])
            totals: dict[str, Any] = {"cost_usd": stats.get("instance_cost")}
        else:
            b = TrajectoryBuilder(agent_name="swe-agent", agent_version=str(info.get("swe_agent_version") or "unknown"),
                                  model_name=obj(model).get("name") if isinstance(model, dict) else model)
            _swe(b, doc["history"])
            totals = {"cost_usd": stats.get("instance_cost"), "input_tokens": stats.get("tokens_sent"),
                      "output_tokens": stats.get("tokens_received")}
        status = info.get("exit_status")
        traj = b.build(extra={"exit_status": status} if status else None)
        meta = {"exit_status": status, "submission": info.get("submission") or None}
        error = None if not status or str(status).lower() == "submitted" else f"exit status: {status}"
        key = _stem(path)
        trial = make_trial(traj, task_name=key, source_format=self.name, source_path=str(path), trial_id=key,
                           metadata={k: v for k, v in meta.items() if v is not None}, error=error,
                           totals={k: v for k, v in totals.items() if isinstance(v, (int, float))})
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())


def _calls(b: TrajectoryBuilder, m: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for tc in m.get("tool_calls") or []:
        fn = obj(obj(tc).get("function"))
        out.append(b.tool_call(obj(tc).get("id"), fn.get("name"), fn.get("arguments")))
    return out


def _unanswered(b: TrajectoryBuilder) -> str | None:
    for step in reversed(b.steps):
        answered = {r.get("source_call_id") for r in (step.get("observation") or {}).get("results", [])}
        for call in reversed(step.get("tool_calls") or []):
            if call["tool_call_id"] not in answered:
                return str(call["tool_call_id"])
        if step.get("tool_calls"):
            return None
    return None


def _mini(b: TrajectoryBuilder, messages: list[Any]) -> None:
    pending: str | None = None  # text-based format: the call awaiting its observation
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            b.skip("a message that is not an object", f"message {i}")
            continue
        role, content = m.get("role"), text_of(m.get("content"))
        extra = obj(m.get("extra"))
        b.count()
        if role == "system":
            b.system(content)
        elif role == "assistant":
            calls = _calls(b, m)
            block = _BASH.search(content) if not calls else None
            if block is not None:
                calls = [b.tool_call(None, "bash", {"command": block.group(1)})]
            cost = extra.get("cost")
            step = b.agent_step(content, timestamp=extra.get("timestamp"), tool_calls=calls,
                                metrics={"cost_usd": cost} if isinstance(cost, (int, float)) else None)
            pending = step["tool_calls"][0]["tool_call_id"] if block is not None else None
        elif role == "tool":
            b.observe(m.get("tool_call_id"), content)
        elif role == "user" and pending is not None:
            b.observe(pending, content)
            pending = None
        elif role == "user":
            b.user(content)
        elif role == "exit":
            cid = _unanswered(b)
            ext = {"exit_status": extra.get("exit_status")} if extra.get("exit_status") else None
            if cid is not None:
                b.observe(cid, content, extra=ext)
            else:
                b.system(content or str(extra.get("exit_status") or "exit"), extra=ext)
        else:
            b.warnings.append(f"message {i} has role {role!r}; kept as a user step")
            b.user(content, extra={"role": role})


def _swe(b: TrajectoryBuilder, history: list[Any]) -> None:
    pending: str | None = None
    for i, m in enumerate(history):
        if not isinstance(m, dict):
            b.skip("a message that is not an object", f"history {i}")
            continue
        if m.get("is_demo") or m.get("message_type") == "demonstration":
            b.skip("a demonstration message (an in-context example, not this run)", f"history {i}")
            continue
        b.count()
        role, content = m.get("role"), text_of(m.get("content"))
        if role == "system":
            b.system(content)
        elif role == "assistant":
            calls = _calls(b, m)
            action = m.get("action")
            if not calls and isinstance(action, str) and action.strip():
                calls = [b.tool_call(None, action.split()[0], {"command": action.strip()})]
            thought = m.get("thought")
            extra = {"thought": thought} if isinstance(thought, str) and thought and thought.strip() not in content else None
            step = b.agent_step(content, tool_calls=calls, extra=extra)
            pending = step["tool_calls"][-1]["tool_call_id"] if step.get("tool_calls") and not m.get("tool_calls") else None
        elif role == "tool":
            ids = m.get("tool_call_ids") or [m.get("tool_call_id")]
            b.observe(ids[0] if ids else None, content)
        elif role == "user" and pending is not None and m.get("message_type") == "observation":
            b.observe(pending, content)
            pending = None
        else:
            b.user(content)
