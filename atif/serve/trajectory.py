"""A stored trajectory shaped for the trial page: steps with timing, calls beside results, subagents.

Pure data shaping, no HTML: the template renders what this returns, escaping every value.
Timestamps give each step its offset from the first step and its duration (until the next
step); tool calls are paired with the observation results that cite them; subagent
trajectories referenced from a result are nested there, the rest listed after the steps.
Very long texts are cut in the page (head and tail kept, a marker between); the raw
trajectory stays one click away.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

__all__ = ["TEXT_CAP", "shape_trajectory", "text_of"]

TEXT_CAP = 20_000
"""Longest text shown whole in the page; longer ones are cut with a marker."""

_LONG_CHARS = 1200
_LONG_LINES = 24


def text_of(content: Any) -> str:
    """The text of a message or result: a string, content parts (images as ``[image: path]``) or JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                if p.get("type") == "text":
                    parts.append(str(p.get("text") or ""))
                else:
                    src = _dict(p.get("source"))
                    where = src.get("path") or src.get("url") or ""
                    parts.append(f"[{p.get('type') or 'part'}{': ' + str(where) if where else ''}]")
            else:
                parts.append(str(p))
        return "\n".join(parts)
    return orjson.dumps(content, option=orjson.OPT_INDENT_2, default=str).decode()


def _text(value: Any) -> dict[str, Any] | None:
    """A text block: the (possibly cut) text, whether it is long (shown collapsed), its first line."""
    s = text_of(value)
    if not s:
        return None
    cut = len(s) > TEXT_CAP
    if cut:
        head, tail = s[: TEXT_CAP * 3 // 4], s[-TEXT_CAP // 5 :]
        s = f"{head}\n…[{len(s) - len(head) - len(tail):,} characters not shown; see the raw trajectory]…\n{tail}"
    first = s.split("\n", 1)[0]
    return {
        "text": s,
        "long": len(s) > _LONG_CHARS or s.count("\n") >= _LONG_LINES,
        "first": first if len(first) <= 100 else first[:100] + "…",
        "chars": len(text_of(value)),
        "cut": cut,
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _metrics(m: Any) -> dict[str, Any]:
    if not isinstance(m, dict):
        return {}
    return {k: m.get(k) for k in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")
            if isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool)}


def shape_trajectory(traj: Any, prefix: str = "") -> dict[str, Any]:
    """The page's view of trajectory ``traj`` (a parsed ATIF document); DOM ids start ``step-{prefix}``."""
    if not isinstance(traj, dict):
        return {"steps": [], "agent": {}, "tools": [], "subagents": [], "timeline": None, "final_metrics": {},
                "notes": None}
    raw_steps = [s for s in traj.get("steps") or [] if isinstance(s, dict)]
    subs = [s for s in traj.get("subagent_trajectories") or [] if isinstance(s, dict)]
    sub_index = {str(s["trajectory_id"]): i for i, s in enumerate(subs) if s.get("trajectory_id") is not None}
    used: set[int] = set()
    times = [_time(s.get("timestamp")) for s in raw_steps]
    known = [t for t in times if t is not None]
    start = min(known) if known else None
    agent = _dict(traj.get("agent"))
    steps: list[dict[str, Any]] = []
    for i, s in enumerate(raw_steps):
        t = times[i]
        nxt = next((u for u in times[i + 1 :] if u is not None), None)
        sid = s.get("step_id")
        source = s.get("source") if s.get("source") in ("agent", "user", "system") else "other"
        results = [r for r in _dict(s.get("observation")).get("results") or [] if isinstance(r, dict)]
        calls: list[dict[str, Any]] = []
        paired: set[int] = set()
        for c in s.get("tool_calls") or []:
            if not isinstance(c, dict):
                continue
            mine = [k for k, r in enumerate(results)
                    if r.get("source_call_id") is not None and r.get("source_call_id") == c.get("tool_call_id")]
            paired.update(mine)
            args = c.get("arguments")
            calls.append({
                "name": str(c.get("function_name") or "?"),
                "id": c.get("tool_call_id"),
                "arguments": _text(args if isinstance(args, str) else
                                   orjson.dumps(args if args is not None else {}, option=orjson.OPT_INDENT_2,
                                                default=str).decode()),
                "results": [_result(results[k], subs, sub_index, used, prefix) for k in mine],
            })
        steps.append({
            "dom_id": f"step-{prefix}{sid if isinstance(sid, int) else 'i' + str(i)}",
            "step_id": sid if sid is not None else i + 1,
            "source": source,
            "source_label": str(s.get("source") or "?"),
            "timestamp": s.get("timestamp"),
            "offset_s": (t - start).total_seconds() if t is not None and start is not None else None,
            "duration_s": (nxt - t).total_seconds() if t is not None and nxt is not None else None,
            "model": s.get("model_name") or (agent.get("model_name") if source == "agent" else None),
            "metrics": _metrics(s.get("metrics")),
            "copied": bool(s.get("is_copied_context")),
            "message": _text(s.get("message")),
            "reasoning": _text(s.get("reasoning_content")),
            "calls": calls,
            "results": [_result(r, subs, sub_index, used, prefix) for k, r in enumerate(results) if k not in paired],
        })
    span = (max(known) - start).total_seconds() if known and start is not None else 0.0
    timeline: dict[str, Any] | None = None
    if span > 0:
        timeline = {"span_s": span, "bars": [
            {"dom_id": st["dom_id"], "step_id": st["step_id"], "source": st["source"],
             "x": st["offset_s"] / span, "w": (st["duration_s"] or 0.0) / span, "duration_s": st["duration_s"]}
            for st in steps if st["offset_s"] is not None]}
    tools = agent.get("tool_definitions")
    tools = tools if isinstance(tools, list) else []
    fm = _dict(traj.get("final_metrics"))
    return {
        "agent": {k: agent.get(k) for k in ("name", "version", "model_name") if agent.get(k) is not None},
        "schema_version": traj.get("schema_version"),
        "notes": _text(traj.get("notes")),
        "steps": steps,
        "timeline": timeline,
        "tools": [{"name": _tool_name(t), "definition": _text(orjson.dumps(t, option=orjson.OPT_INDENT_2,
                                                                            default=str).decode())}
                  for t in tools],
        "final_metrics": {k: v for k, v in fm.items() if k != "extra" and v is not None},
        "subagents": [shape_subagent(subs[i], f"{prefix}sa{i}-") for i in range(len(subs)) if i not in used],
    }


def shape_subagent(sub: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A nested subagent trajectory with its name, id and shaped steps."""
    agent = _dict(sub.get("agent"))
    return {"name": str(agent.get("name") or "subagent"), "trajectory_id": sub.get("trajectory_id"),
            "view": shape_trajectory(sub, prefix)}


def _result(r: dict[str, Any], subs: list[dict[str, Any]], sub_index: dict[str, int], used: set[int],
            prefix: str) -> dict[str, Any]:
    nested = []
    missing = []
    for ref in r.get("subagent_trajectory_ref") or []:
        if not isinstance(ref, dict):
            continue
        key = str(ref.get("trajectory_id")) if ref.get("trajectory_id") is not None else None
        if key is not None and key in sub_index and sub_index[key] not in used:
            used.add(sub_index[key])
            nested.append(shape_subagent(subs[sub_index[key]], f"{prefix}sa{sub_index[key]}-"))
        else:
            missing.append(str(ref.get("trajectory_path") or ref.get("session_id") or ref.get("trajectory_id") or ""))
    return {"call_id": r.get("source_call_id"), "content": _text(r.get("content")), "subagents": nested,
            "missing_subagents": missing}


def _tool_name(t: Any) -> str:
    if isinstance(t, dict):
        fn = t.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
        if isinstance(t.get("name"), str):
            return str(t["name"])
    return "?"
