"""``astream_events(..., version="v2")`` event lists read as LangSmith-shaped runs.

Each ``on_<kind>_start`` event opens a run (``run_id``, ``name``, ``parent_ids[-1]`` as parent,
``data.input`` as inputs), its ``on_<kind>_end`` closes it (``data.output`` as outputs); the
runs are then read by the LangSmith rules (:mod:`.langsmith`). Events carry no clock, so the
runs are ordered by when their start event came. ``on_<kind>_stream`` events are chunks of what
the end event holds whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_RUN_TYPES = {"chat_model": "llm", "llm": "llm", "tool": "tool", "chain": "chain", "retriever": "retriever",
              "prompt": "prompt", "parser": "parser"}


def is_event(item: Any) -> bool:
    """True for one ``astream_events`` v2 event."""
    return (isinstance(item, Mapping) and isinstance(item.get("event"), str) and item["event"].startswith("on_")
            and "run_id" in item and "data" in item)


def _kind(event: str) -> tuple[str, str] | None:
    """``("chat_model", "start")`` of ``"on_chat_model_start"``; None for other events."""
    body = event.removeprefix("on_")
    for phase in ("start", "end", "stream"):
        if body.endswith("_" + phase) and body[: -len(phase) - 1] in _RUN_TYPES:
            return body[: -len(phase) - 1], phase
    return None


def _as_inputs(value: Any, key: str) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {key: value}


def events_to_runs(events: list[Any]) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """``(runs, skip reason -> count, chunk events)`` of an event list (see the module docstring)."""
    runs: dict[str, dict[str, Any]] = {}
    skips: dict[str, int] = {}
    chunks = 0
    for n, ev in enumerate(events):
        kind = _kind(str(ev.get("event")))
        if kind is None:
            reason = f"event {ev.get('event')!r} (not a run's start, stream or end)"
            skips[reason] = skips.get(reason, 0) + 1
            continue
        rtype, phase = kind
        rid = str(ev["run_id"])
        data = ev.get("data") if isinstance(ev.get("data"), Mapping) else {}
        if phase == "stream":
            chunks += 1
            continue
        run = runs.get(rid)
        if run is None:
            parents = [str(p) for p in ev.get("parent_ids") or []]
            run = runs[rid] = {
                "id": rid,
                "name": ev.get("name"),
                "run_type": _RUN_TYPES[rtype],
                "parent_run_id": parents[-1] if parents else None,
                "trace_id": parents[0] if parents else rid,
                "dotted_order": f"{n:09d}",
                "inputs": {},
                "outputs": None,
                "tags": ev.get("tags") or [],
                "extra": {"metadata": ev.get("metadata") or {}},
            }
        if phase == "start" and "input" in data:
            run["inputs"] = _as_inputs(data["input"], "input")
        elif phase == "end":
            if "output" in data:
                run["outputs"] = _as_inputs(data["output"], "output") if rtype == "chain" else {"output": data["output"]}
            if not run["inputs"] and "input" in data:
                run["inputs"] = _as_inputs(data["input"], "input")
    return list(runs.values()), skips, chunks
