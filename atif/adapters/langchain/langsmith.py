"""The ``langsmith`` adapter: LangSmith run trees and flat run exports, one trajectory per trace."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import sniff_json, sniff_jsonl_first
from atif.adapters.langchain.events import events_to_runs, is_event
from atif.adapters.langchain.serialisation import (
    JSONL_SUFFIXES,
    describe,
    is_run,
    normalize_message,
    read_document,
)
from atif.adapters.langchain.steps import Timed, build_steps, main_model, provider_usage
from atif.adapters.values import (
    iso_timestamp,
    seconds_between,
    source_names,
    text_of,
    without_none,
)
from atif.errors import AdapterError, AtifError
from atif.schema.identity import stable_id


def _flatten(run: Mapping[str, Any], out: list[dict[str, Any]], parent: str | None) -> None:
    r = dict(run)
    children = r.pop("child_runs", None) or []
    if parent is not None and not r.get("parent_run_id"):
        r["parent_run_id"] = parent
    out.append(r)
    for child in children:
        if isinstance(child, Mapping):
            _flatten(child, out, str(r.get("id")))


def _runs_of(doc: Any) -> tuple[list[dict[str, Any]] | None, str]:
    """Every run of a run tree / run list, flattened; ``(None, why not)`` otherwise."""
    if isinstance(doc, list) and doc and is_event(doc[0]):
        for i, ev in enumerate(doc):
            if not is_event(ev):
                return None, f"item {i} is not an astream_events event ({describe(ev)})"
        return events_to_runs(doc)[0], ""
    if isinstance(doc, Mapping) and isinstance(doc.get("runs"), list):
        doc = doc["runs"]
    if isinstance(doc, Mapping):
        if not is_run(doc):
            return None, "not a LangSmith run (no `run_type` with inputs/outputs)"
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        return None, "not a LangSmith run or run list"
    out: list[dict[str, Any]] = []
    for i, run in enumerate(doc):
        if not is_run(run):
            return None, f"item {i} is not a LangSmith run ({describe(run)})"
        _flatten(run, out, None)
    return out, ""


def _order_key(run: Mapping[str, Any]) -> tuple[str, str]:
    return (str(run.get("dotted_order") or ""), str(run.get("start_time") or ""))


def _traces(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(root run, runs of its trace in dotted_order)`` per trace, roots in order."""
    by_id = {str(r.get("id")): r for r in runs}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        trace = r.get("trace_id")
        if not trace:  # walk up to the root
            cur = r
            seen: set[str] = set()
            while cur.get("parent_run_id") and str(cur["parent_run_id"]) in by_id and str(cur["id"]) not in seen:
                seen.add(str(cur["id"]))
                cur = by_id[str(cur["parent_run_id"])]
            trace = cur.get("id")
        groups.setdefault(str(trace), []).append(r)
    out = []
    for trace, members in groups.items():
        members.sort(key=_order_key)
        root = by_id.get(trace) or next((m for m in members if not m.get("parent_run_id")), members[0])
        out.append((root, members))
    out.sort(key=lambda t: _order_key(t[0]))
    return out


_OPENAI_KINDS = {"system": "system", "developer": "system", "user": "human", "assistant": "ai", "tool": "tool"}


def _message(item: Any) -> dict[str, Any] | None:
    """A LangChain message, or an OpenAI chat dict as the custom-LLM convention logs it, normalised."""
    msg = normalize_message(item)
    if msg is not None or not isinstance(item, Mapping) or item.get("role") not in _OPENAI_KINDS:
        return msg
    out: dict[str, Any] = {"kind": _OPENAI_KINDS[str(item["role"])], "content": item.get("content") or ""}
    if item.get("tool_calls"):
        out["additional_kwargs"] = {"tool_calls": item["tool_calls"]}
    for key in ("tool_call_id", "name", "id"):
        if item.get(key) is not None:
            out[key] = item[key]
    return out


def _run_messages(value: Any) -> list[dict[str, Any]]:
    """Normalised messages of a run's inputs / outputs value (a list, or a batch of lists)."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        value = value[0]  # chat model runs hold a batch of prompts; a trace has one
    if not isinstance(value, list):
        value = [value]
    out = []
    for item in value:
        msg = _message(item)
        if msg is not None:
            out.append(msg)
    return out


# ``get_buffer_string`` prefixes (langchain-core's defaults) -> message kind.
_BUFFER_PREFIXES = {"System": "system", "Human": "human", "AI": "ai", "Tool": "tool", "Function": "function"}


def buffer_messages(prompt: str) -> list[dict[str, Any]]:
    """The messages of one ``get_buffer_string`` prompt (``System: ...\nHuman: ...``).

    A tracer in langchain-core's default schema records a chat model call as an ``llm`` run whose
    input is this one string, so it is the only place the system prompt is kept. A line starting
    with a known prefix starts a message; other lines continue the one before (a message whose
    own text has a line starting ``Human: `` is split there: the string cannot tell).
    """
    out: list[dict[str, Any]] = []
    for line in prompt.split("\n"):
        head, sep, rest = line.partition(": ")
        if sep and head in _BUFFER_PREFIXES:
            out.append({"kind": _BUFFER_PREFIXES[head], "content": rest})
        elif out:
            out[-1]["content"] += "\n" + line
        elif line:
            out.append({"kind": "human", "content": line})
    return out


def _prompt_strings(inputs: Any) -> list[dict[str, Any]]:
    """Messages of an ``llm`` run's ``{"prompts": [str]}`` input (the first prompt: a trace has one)."""
    prompts = inputs.get("prompts") if isinstance(inputs, Mapping) else None
    if isinstance(prompts, list) and prompts and isinstance(prompts[0], str):
        return buffer_messages(prompts[0])
    return []


def _llm_output(run: Mapping[str, Any]) -> dict[str, Any] | None:
    outputs = run.get("outputs") or {}
    gens = outputs.get("generations") if isinstance(outputs, Mapping) else None
    if isinstance(gens, list) and gens and isinstance(gens[0], list):
        gens = gens[0]
    if isinstance(gens, list):
        for g in gens:
            if isinstance(g, Mapping):
                msg = normalize_message(g.get("message"))
                if msg is not None:
                    return msg
                if isinstance(g.get("text"), str):
                    return {"kind": "ai", "content": g["text"]}
    if isinstance(outputs, Mapping):
        for key in ("output", "message"):
            msg = normalize_message(outputs.get(key))
            if msg is not None and msg["kind"] == "ai":
                return msg
        # LangSmith's custom-LLM convention (``@traceable(run_type="llm")``): an OpenAI-style body.
        choices = outputs.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message")
            if isinstance(message, Mapping):
                return _message({**message, "role": message.get("role") or "assistant"})
    return None


def _msg_key(msg: Mapping[str, Any]) -> str:
    if msg.get("id"):
        return "id:" + str(msg["id"])
    if msg["kind"] == "tool" and msg.get("tool_call_id"):
        return "tool:" + str(msg["tool_call_id"])
    return "content:" + stable_id(msg["kind"], msg.get("content"))


def _run_usage(run: Mapping[str, Any]) -> dict[str, Any] | None:
    outputs = run.get("outputs") or {}
    llm_output = outputs.get("llm_output") if isinstance(outputs, Mapping) else None
    usage = None
    if isinstance(llm_output, Mapping):
        usage = llm_output.get("token_usage") or llm_output.get("usage")
    elif isinstance(outputs, Mapping) and isinstance(outputs.get("usage"), Mapping):
        usage = outputs["usage"]  # the custom-LLM convention: the provider's own usage
    m = provider_usage(usage) if isinstance(usage, Mapping) else None
    if m is None and (run.get("prompt_tokens") is not None or run.get("completion_tokens") is not None):
        m = without_none({"prompt_tokens": run.get("prompt_tokens"), "completion_tokens": run.get("completion_tokens")})
    return m


def _run_model(run: Mapping[str, Any]) -> str | None:
    extra = run.get("extra") or {}
    if not isinstance(extra, Mapping):
        return None
    meta = extra.get("metadata") or {}
    params = extra.get("invocation_params") or {}
    for src, key in ((meta, "ls_model_name"), (params, "model_name"), (params, "model")):
        if isinstance(src, Mapping) and isinstance(src.get(key), str) and src[key]:
            return str(src[key])
    outputs = run.get("outputs")
    if isinstance(outputs, Mapping) and isinstance(outputs.get("model"), str) and outputs["model"]:
        return str(outputs["model"])
    return None


def _trace_to_messages(
    root: Mapping[str, Any], runs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[int, Timed]]:
    """The conversation of one trace and run context per message index.

    The conversation is rebuilt from the chat-model runs in ``dotted_order``: each run's input
    messages not seen before, then its output message; the root run's output messages that no
    model run saw (a final tool result, say) close it. This recovers the system prompt a
    LangGraph agent adds to each model call, which its state never holds.
    """
    conv: list[dict[str, Any]] = []
    seen: set[str] = set()
    # (kind, text) of system/human messages read from prompt strings, which carry no id: the
    # same message met later with an id (the root's output state) is the same message.
    seen_text: set[tuple[str, str]] = set()
    timing: dict[int, Timed] = {}
    root_inputs = {
        _msg_key(m)
        for m in _run_messages((root.get("inputs") or {}).get("messages") if isinstance(root.get("inputs"), Mapping)
                               else None)
    }
    root_start = iso_timestamp(root.get("start_time"))

    def append(msg: dict[str, Any], ctx: Timed | None) -> None:
        key = _msg_key(msg)
        if key in seen or (msg.get("id") and (msg["kind"], text_of(msg.get("content"))) in seen_text):
            return
        seen.add(key)
        if ctx is not None:
            timing[len(conv)] = ctx
        conv.append(msg)

    tool_runs: dict[str, dict[str, Any]] = {}
    by_id = {str(r.get("id")): r for r in runs}
    for run in runs:
        if run.get("run_type") == "tool":
            out = run.get("outputs") or {}
            msg = normalize_message(out.get("output")) if isinstance(out, Mapping) else None
            cid = (msg or {}).get("tool_call_id") or _tool_call_id_of(run)
            if not cid and run.get("parent_run_id"):  # a failed tool run: ask the ToolNode task above it
                cid = _tool_call_id_of(by_id.get(str(run["parent_run_id"])) or {})
            if cid:
                tool_runs[str(cid)] = run

    for run in runs:
        if run.get("run_type") not in ("llm", "chat_model"):
            continue
        inputs = run.get("inputs") or {}
        prompt = _run_messages(inputs.get("messages")) if isinstance(inputs, Mapping) else []
        if not prompt:
            # Only what the string alone holds: system and user turns. Model replies and tool
            # results in it come, with their ids and calls, from the runs that made them.
            prompt = [m for m in _prompt_strings(inputs) if m["kind"] in ("system", "human")]
            seen_text.update((m["kind"], m["content"]) for m in prompt)
        start = iso_timestamp(run.get("start_time"))
        out = _llm_output(run)
        out_key = _msg_key({**out, "id": out.get("id")}) if out is not None else None
        for msg in prompt:
            if _msg_key(msg) == out_key:
                # ``@traceable`` keeps the caller's list, which grows after the call: what follows
                # the run's own output in its "input" is later history, read from later runs.
                break
            # The opening prompt (before any model output) belongs to the start of the trace.
            opening = _msg_key(msg) in root_inputs or not any(m["kind"] == "ai" for m in conv)
            ts = root_start if opening else start
            append(msg, Timed(timestamp=ts) if msg["kind"] in ("human", "system", "chat") else None)
        if out is not None:
            out.setdefault("id", None)
            ctx = Timed(
                timestamp=iso_timestamp(run.get("end_time")),
                model_name=_run_model(run),
                metrics=_run_usage(run),
                extra=without_none({"run_id": str(run["id"]) if run.get("id") else None}),
            )
            if run.get("error"):
                ctx.extra["run_error"] = str(run["error"])
            append(out, ctx)
    if not conv and isinstance(root.get("inputs"), Mapping):  # a trace without model runs
        for msg in _run_messages(root["inputs"].get("messages")):
            append(msg, Timed(timestamp=root_start) if msg["kind"] in ("human", "system", "chat") else None)
    outputs = root.get("outputs") or {}
    if isinstance(outputs, Mapping):
        for msg in _run_messages(outputs.get("messages")):
            append(msg, None)

    for i, msg in enumerate(conv):  # tool runs: their errors and run ids
        if msg["kind"] != "tool":
            continue
        tool_run = tool_runs.get(str(msg.get("tool_call_id")))
        if tool_run is None:
            continue
        ctx = timing.setdefault(i, Timed())
        if tool_run.get("id"):
            ctx.extra["run_id"] = str(tool_run["id"])
        if tool_run.get("error"):
            ctx.tool_error = str(tool_run["error"])
    return conv, timing


def _tool_call_id_of(run: Mapping[str, Any]) -> str | None:
    inputs = run.get("inputs") or {}
    if isinstance(inputs, Mapping):
        for key in ("tool_call_id",):
            if isinstance(inputs.get(key), str):
                return str(inputs[key])
        for key in ("input", "tool_call"):  # a tool_call payload: the tool's input or a ToolNode Send
            inner = inputs.get(key)
            if isinstance(inner, Mapping) and isinstance(inner.get("id"), str) and inner.get("type") == "tool_call":
                return str(inner["id"])
    extra = run.get("extra") or {}
    if isinstance(extra, Mapping):
        for src in (extra, extra.get("metadata")):
            if isinstance(src, Mapping) and isinstance(src.get("tool_call_id"), str):
                return str(src["tool_call_id"])
    return None


def _tool_definitions(runs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The tools bound to the first chat-model run (``invocation_params.tools``)."""
    for run in runs:
        if run.get("run_type") != "llm":
            continue
        extra = run.get("extra") or {}
        params = extra.get("invocation_params") if isinstance(extra, Mapping) else None
        tools = params.get("tools") if isinstance(params, Mapping) else None
        if isinstance(tools, list) and tools and all(isinstance(t, Mapping) for t in tools):
            return [dict(t) for t in tools]
    return None


class LangSmithAdapter:
    """LangSmith run trees (nested ``child_runs``) and run exports (JSON list or JSONL)."""

    name = "langsmith"
    description = "LangSmith run trees (child_runs) and flat run exports (JSON or JSONL, by dotted_order)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a run, a run list, or a JSONL file whose first line is a run."""
        if path.suffix.lower() in JSONL_SUFFIXES:
            first, why = sniff_jsonl_first(path)
            if why:
                return Sniff(False, why)
            if is_run(first):
                return Sniff(True, "JSONL of LangSmith runs")
            if is_event(first):
                return Sniff(True, "JSONL of LangChain astream_events (v2) events")
            return Sniff(False, f"first line is not a LangSmith run ({describe(first)})")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        runs, why = _runs_of(doc)
        if runs is None:
            return Sniff(False, why)
        if isinstance(doc, list) and is_event(doc[0]):
            return Sniff(True, f"LangChain astream_events (v2): {len(doc)} events, {len(runs)} runs")
        return Sniff(True, f"LangSmith runs ({len(runs)})")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """Yield one trajectory per trace (root run)."""
        doc = read_document(path)
        runs, why = _runs_of(doc)
        if runs is None:
            raise AdapterError(f"{path}: not LangSmith runs: {why}")
        shape = "run-tree" if isinstance(doc, Mapping) else "runs"
        tally: dict[str, Any] | None = None
        if isinstance(doc, list) and is_event(doc[0]):
            shape = "astream-events-v2"
            _, skips, _ = events_to_runs(doc)
            skipped = sum(skips.values())
            tally = {"read": len(doc), "mapped": len(doc) - skipped, "skipped": skipped, "skip_reasons": skips}
        for root, members in _traces(runs):
            try:
                item = self._trace(path, root, members, shape, options)
            except AtifError as exc:
                yield Failure(f"{path}#{root.get('id')}", str(exc))
                continue
            item.tally, tally = tally, None  # the file's events are counted once, with its first trace
            if item.tally and item.tally["skip_reasons"]:
                item.warnings.extend(f"{n} x {r}; skipped" for r, n in item.tally["skip_reasons"].items())
            yield item

    def _trace(
        self,
        path: Path,
        root: Mapping[str, Any],
        runs: list[dict[str, Any]],
        shape: str,
        options: ConvertOptions,
    ) -> Converted:
        messages, timing = _trace_to_messages(root, runs)
        root_id = str(root.get("id") or stable_id(str(path), root.get("name")))
        trace_id = str(root.get("trace_id") or root_id)
        extra = root.get("extra") or {}
        runtime = extra.get("runtime") if isinstance(extra, Mapping) else None
        meta = extra.get("metadata") if isinstance(extra, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        version = None
        if isinstance(runtime, Mapping):
            version = runtime.get("library_version") or runtime.get("langchain_core_version")
        builder = TrajectoryBuilder(
            agent_name=str(root.get("name") or "langsmith"),
            agent_version=str(meta.get("revision_id") or version or "unknown"),
            session_id=trace_id,
            tool_definitions=_tool_definitions(runs),
        )
        by_position = build_steps(builder, messages, timing)
        model = main_model(builder.steps)
        if model:
            builder.agent["model_name"] = model
        fmt = f"langsmith/{shape}"
        traj_extra = without_none({
            "source_format": fmt,
            "run_id": root_id,
            "project": root.get("session_name"),
            "tags": root.get("tags") or None,
            "tool_results_paired_by_position": by_position or None,
        })
        traj = builder.build(extra=traj_extra)
        error = root.get("error")
        task = (
            options.extra.get("task_name")
            or meta.get("task_name")
            or meta.get("task")
            or root.get("reference_example_id")
            or source_names(path)[0]
        )
        trial = make_trial(
            traj,
            task_name=str(task),
            source_format=fmt,
            source_path=str(path),
            source_ids=without_none({
                "run_id": root_id,
                "trace_id": trace_id,
                "project": root.get("session_name"),
                "reference_example_id": root.get("reference_example_id"),
            }),
            error=str(error) if error else None,
            duration_seconds=seconds_between(root.get("start_time"), root.get("end_time")),
            trial_id=root_id,
        )
        return Converted(traj, trial, trial_key=root_id, source=str(path), warnings=list(builder.warnings))
