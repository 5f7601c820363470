"""OpenAI Agents SDK (``openai-agents``) runs and traces.

**Runs** (``openai-agents``), one trajectory per file:

* a ``RunState`` as ``result.to_state().to_json()`` writes it (``$schemaVersion``,
  ``original_input``, ``generated_items``, ``model_responses``);
* ``RunResult.new_items`` saved as ``{"type", "agent", "raw_item"}`` objects, either a bare list or
  under ``new_items`` beside the run's ``input`` (``to_input_list`` and ``final_output`` there
  repeat the same items and are not read again).

Each run item's ``raw_item`` is a Responses item and maps by the ``openai-responses`` rules
(:class:`atif.adapters.openai.ResponsesItems`): ``message_output_item`` -> agent text,
``tool_call_item`` / ``handoff_call_item`` -> tool calls (a handoff is the call
``transfer_to_<agent>``, marked ``extra.handoff``), ``*_output_item`` -> observations,
``reasoning_item`` -> reasoning. The agent that produced an item is in the step's
``extra.agent``. Usage comes from ``model_responses``: each response's usage goes to the
agent step its output items made. Item types not listed here are counted as skipped (and
listed by ``atif convert --dry-run``).

**Traces** (``openai-agents-trace``): what a ``TracingProcessor`` receives, as the SDK exports it
(``Trace.export()`` / ``Span.export()``), in the ``{"data": [...]}`` body the SDK's
``BackendSpanExporter`` posts, a JSON list, or one object per line; one trajectory per trace.
Spans are read in start order: ``generation`` spans give the conversation (their chat-format
``input`` messages not seen before, then their ``output``, with usage and model), ``function``
spans the tool results (paired with the calls of that name in order; a function span no
generation asked for becomes a call of its own), ``response`` spans (the Responses model
exports only the response id and usage) the usage of an agent step, ``handoff`` spans the
trajectory's ``extra.handoffs``, ``agent`` spans the agent named in each step's
``extra.agent``. The SDK's ``turn``/``task`` custom spans repeat the usage sums; other span
types (guardrail, MCP, speech, other custom spans) are counted as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import iter_jsonl, load_json_cached, sniff_json, sniff_jsonl_first
from atif.adapters.openai import ResponsesItems, chat_metrics
from atif.adapters.values import obj, parse_arguments, seconds_between, source_names, text_of
from atif.errors import AdapterError
from atif.schema.identity import stable_id

__all__ = ["OpenAIAgentsAdapter", "OpenAIAgentsTraceAdapter", "agents_usage"]

_JSONL = (".jsonl", ".ndjson")
_FAKE_ID = "__fake_id__"  # the SDK's placeholder id for items that did not come from the Responses API
RUN_ITEM_TYPES = {
    "message_output_item", "tool_call_item", "tool_call_output_item", "handoff_call_item",
    "handoff_output_item", "reasoning_item", "mcp_list_tools_item", "mcp_approval_request_item",
    "mcp_approval_response_item", "tool_approval_item",
}

_RESULT_ITEMS = {"tool_call_output_item", "handoff_output_item", "mcp_approval_response_item"}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _details(v: Any) -> Mapping[str, Any]:
    """A usage details object; ``RunState`` JSON keeps it as a one-element list."""
    if isinstance(v, list):
        v = v[0] if v else {}
    return obj(v)


def agents_usage(usage: Any) -> dict[str, Any] | None:
    """ATIF step metrics from an Agents SDK ``Usage`` (``input_tokens`` include cached ones)."""
    if not isinstance(usage, Mapping):
        return None
    det, out = _details(usage.get("input_tokens_details")), _details(usage.get("output_tokens_details"))
    extra: dict[str, Any] = {}
    if _int(out.get("reasoning_tokens")):
        extra["reasoning_tokens"] = out["reasoning_tokens"]
    if _int(det.get("cache_write_tokens")):
        extra["cache_creation_tokens"] = det["cache_write_tokens"]
    m: dict[str, Any] = {
        "prompt_tokens": _int(usage.get("input_tokens")),
        "completion_tokens": _int(usage.get("output_tokens")),
        "cached_tokens": _int(det.get("cached_tokens")),
        "extra": extra or None,
    }
    out_m = {k: v for k, v in m.items() if v is not None}
    return out_m if ("prompt_tokens" in out_m or "completion_tokens" in out_m) else None


# --------------------------------------------------------------------------------------
# Runs: RunState JSON and new_items
# --------------------------------------------------------------------------------------


def _is_run_item(item: Any) -> bool:
    return isinstance(item, Mapping) and isinstance(item.get("type"), str) and item["type"].endswith("_item") \
        and "raw_item" in item


def _run_doc(doc: Any) -> tuple[str, Any, list[Any], list[Any]] | None:
    """``(shape, original input, run items, model responses)``, or None when ``doc`` is not a run."""
    if isinstance(doc, Mapping) and "$schemaVersion" in doc and isinstance(doc.get("generated_items"), list):
        responses: list[Any] = doc["model_responses"] if isinstance(doc.get("model_responses"), list) else []
        return "run-state", doc.get("original_input"), list(doc["generated_items"]), responses
    if isinstance(doc, Mapping) and isinstance(doc.get("new_items"), list) and (
        not doc["new_items"] or _is_run_item(doc["new_items"][0])
    ):
        raw: list[Any] = doc["raw_responses"] if isinstance(doc.get("raw_responses"), list) else []
        return "new-items", doc.get("input"), list(doc["new_items"]), raw
    if isinstance(doc, list) and doc and _is_run_item(doc[0]):
        return "new-items", None, doc, []
    return None


def _clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if not (k == "id" and v == _FAKE_ID)}


def _response_keys(responses: list[Any]) -> dict[tuple[str, str], int]:
    """Which model response (by index) produced each output item, keyed by call id or text."""
    keys: dict[tuple[str, str], int] = {}
    for n, resp in enumerate(responses):
        for raw in obj(resp).get("output") or []:
            if isinstance(raw, Mapping):
                keys[_item_key(raw)] = n
    return keys


def _item_key(raw: Mapping[str, Any]) -> tuple[str, str]:
    if raw.get("call_id"):
        return (str(raw.get("type")), str(raw["call_id"]))
    if raw.get("id") and raw.get("id") != _FAKE_ID:
        return ("id", str(raw["id"]))
    return (str(raw.get("type")), stable_id(raw.get("content"), raw.get("summary")))


class OpenAIAgentsAdapter:
    """Agents SDK runs: ``RunState.to_json()`` and saved ``RunResult.new_items``."""

    name = "openai-agents"
    description = "OpenAI Agents SDK runs: RunState.to_json(), RunResult.new_items (type, agent, raw_item)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a RunState or a new_items list (JSON)."""
        if path.suffix.lower() in _JSONL:
            return Sniff(False, "a JSONL file (an Agents SDK run is one JSON document)")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        got = _run_doc(doc)
        if got is None:
            return Sniff(False, "neither an Agents SDK RunState ($schemaVersion, generated_items) nor run items "
                                "({type: *_item, raw_item})")
        shape, _, items, _ = got
        version = f" schema {doc['$schemaVersion']}" if shape == "run-state" else ""
        return Sniff(True, f"Agents SDK {shape}{version} with {len(items)} run items")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """Yield the one trajectory of the file."""
        doc = load_json_cached(path)
        got = _run_doc(doc)
        if got is None:
            raise AdapterError(f"{path}: not an Agents SDK run (no generated_items / new_items)")
        shape, original, items, responses = got
        rec = doc if isinstance(doc, Mapping) else {}
        task, key = source_names(path, rec)
        agents = [str(obj(it.get("agent")).get("name") or it.get("agent")) for it in items
                  if isinstance(it, Mapping) and it.get("agent")]
        current = obj(rec.get("current_agent")).get("name") or rec.get("last_agent")
        b = TrajectoryBuilder(
            agent_name=agents[0] if agents else str(current or "openai-agents"),
            agent_extra={"agents": list(dict.fromkeys(agents))} if agents else None,
        )
        reader = ResponsesItems(b)
        if isinstance(original, str):
            b.count()
            b.user(original)
        elif isinstance(original, list):
            for i, it in enumerate(original):
                reader.add(_clean(it) if isinstance(it, Mapping) else it, f"original_input/{i}")
        by_response = _response_keys(responses)
        step_of: dict[int, dict[str, Any]] = {}
        current_resp: int | None = None
        models: list[str] = []
        for i, it in enumerate(items):
            where = f"{'generated_items' if shape == 'run-state' else 'new_items'}/{i}"
            if not isinstance(it, Mapping) or not isinstance(it.get("raw_item"), Mapping):
                b.skip("run item without a raw_item object", where)
                continue
            itype = str(it.get("type"))
            if itype not in RUN_ITEM_TYPES:
                b.skip(f"unknown run item type {itype!r}", where)
                continue
            raw = _clean(it["raw_item"])
            resp = by_response.get(_item_key(raw))
            if resp is not None and resp != current_resp:
                reader.open_step = None  # a new model response: a new agent turn
            current_resp = resp if resp is not None else current_resp
            model = obj(raw.get("provider_data")).get("model")
            if isinstance(model, str):
                models.append(model)
            reader.add(raw, where)
            agent = obj(it.get("agent")).get("name") or (it.get("agent") if isinstance(it.get("agent"), str) else None)
            step = reader.open_step or (b.steps[-1] if b.steps else None)
            if step is not None and step["source"] == "agent" and itype not in _RESULT_ITEMS:
                ext = step.setdefault("extra", {})
                if agent:
                    ext.setdefault("agent", agent)
                if itype == "handoff_call_item":
                    for call in step.get("tool_calls") or []:
                        if call["tool_call_id"] == raw.get("call_id"):
                            call.setdefault("extra", {})["handoff"] = True
                if resp is not None:
                    step_of[resp] = step
        reader.finish()
        for n, resp in enumerate(responses):
            metrics = agents_usage(obj(resp).get("usage"))
            if metrics is None:
                continue
            if n in step_of:
                step_of[n]["metrics"] = metrics
            else:
                b.warnings.append(f"model_responses/{n}: no item of this response was kept; its usage is not counted")
        if models:
            b.agent["model_name"] = max(set(models), key=models.count)
        b.session_id = stable_id(str(path), b.steps) if shape != "run-state" else stable_id(b.steps)
        fmt = f"openai-agents/{shape}"
        extra: dict[str, Any] = {"source_format": fmt}
        if shape == "run-state":
            extra["run_state_schema"] = rec.get("$schemaVersion")
        traj = b.build(extra=extra)
        trial = make_trial(traj, task_name=str(options.extra.get("task_name") or task), source_format=fmt,
                           source_path=str(path), trial_id=key)
        yield Converted(traj, trial, key, str(path), b.warnings, tally=b.tally())


# --------------------------------------------------------------------------------------
# Traces: Trace.export() / Span.export()
# --------------------------------------------------------------------------------------


def _is_trace_object(item: Any) -> bool:
    return isinstance(item, Mapping) and item.get("object") in ("trace", "trace.span")


def _trace_objects(doc: Any) -> list[Any] | None:
    if isinstance(doc, Mapping) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if isinstance(doc, list) and doc and all(_is_trace_object(x) for x in doc):
        return list(doc)
    return None


def _read_trace_file(path: Path) -> list[Any]:
    if path.suffix.lower() in _JSONL:
        return [v for _, v in iter_jsonl(path)]
    objs = _trace_objects(load_json_cached(path))
    if objs is None:
        raise AdapterError(f"{path}: not an Agents SDK trace export (objects `trace` / `trace.span`)")
    return objs


_USAGE_SPANS = {"turn", "task"}  # the SDK's custom spans holding usage sums of the spans below them


class _TraceReader:
    """Builds one trajectory from the spans of one trace (see the module docstring)."""

    def __init__(self, trace: Mapping[str, Any], spans: list[Mapping[str, Any]]) -> None:
        self.trace = trace
        self.spans = sorted(spans, key=lambda s: str(s.get("started_at") or ""))
        self.by_id = {str(s.get("id")): s for s in spans}
        self.b = TrajectoryBuilder(agent_name="openai-agents")
        self.seen: set[tuple[str, ...]] = set()
        self.calls: list[tuple[str, str]] = []  # (call id, function name) in the order they were made
        self.results: dict[str, tuple[Any, dict[str, Any] | None]] = {}
        self.handoffs: list[dict[str, Any]] = []
        self.agents: list[str] = []
        self.models: list[str] = []

    def agent_of(self, span: Mapping[str, Any]) -> str | None:
        cur: Mapping[str, Any] | None = span
        hops = 0
        while cur is not None and hops < 64:
            data = obj(cur.get("span_data"))
            if data.get("type") == "agent":
                return str(data.get("name"))
            cur = self.by_id.get(str(cur.get("parent_id")))
            hops += 1
        return None

    def _key(self, m: Mapping[str, Any]) -> tuple[str, ...]:
        """Identity of a chat message across generation spans (each repeats the history before it)."""
        role = str(m.get("role"))
        if role == "tool":
            return ("tool", str(m.get("tool_call_id")))
        ids = [str(obj(c).get("id")) for c in m.get("tool_calls") or []]
        content = m.get("content")
        return (role, content if isinstance(content, str) else text_of(content), *ids)

    def message(self, m: Mapping[str, Any], span: Mapping[str, Any], *, output: bool) -> None:
        key = self._key(m)
        if key in self.seen:
            return
        self.seen.add(key)
        b = self.b
        role = m.get("role")
        ts = span.get("ended_at") if output else span.get("started_at")
        if role in ("system", "developer"):
            b.system(text_of(m.get("content")), timestamp=ts)
        elif role == "user":
            b.user(text_of(m.get("content")), timestamp=ts)
        elif role == "assistant":
            data = obj(span.get("span_data"))
            calls = []
            for c in m.get("tool_calls") or []:
                fn = obj(obj(c).get("function"))
                calls.append(b.tool_call(obj(c).get("id"), fn.get("name"), fn.get("arguments")))
            agent = self.agent_of(span)
            extra = {"agent": agent} if agent else {}
            if m.get("refusal"):
                extra["refusal"] = m["refusal"]
            step = b.agent_step(
                text_of(m.get("content")), timestamp=ts, tool_calls=calls,
                model_name=data.get("model") if isinstance(data.get("model"), str) else None,
                metrics=agents_usage(data.get("usage")) or chat_metrics(data.get("usage")) if output else None,
                extra=extra or None,
            )
            for c in step.get("tool_calls") or []:
                self.calls.append((c["tool_call_id"], c["function_name"]))
        elif role == "tool":
            cid = str(m.get("tool_call_id"))
            content, extra = self.results.pop(cid, (m.get("content"), None))
            b.observe(cid, text_of(content) if not isinstance(content, str) else content, extra=extra)

    def read(self) -> TrajectoryBuilder:
        b = self.b
        b.count()  # the trace object itself
        # Function spans first: each result is paired with the call of that name it answers.
        pending_by_name: dict[str, list[Mapping[str, Any]]] = {}
        for span in self.spans:
            data = obj(span.get("span_data"))
            if data.get("type") == "function":
                pending_by_name.setdefault(str(data.get("name")), []).append(span)
        generations = [s for s in self.spans if obj(s.get("span_data")).get("type") == "generation"]
        for span in self.spans:
            data = obj(span.get("span_data"))
            stype = data.get("type")
            if stype == "generation":
                b.count()
                if isinstance(data.get("model"), str):
                    self.models.append(data["model"])
                for m in data.get("input") or []:
                    if isinstance(m, Mapping):
                        if m.get("role") == "tool":
                            self._take_result(str(m.get("tool_call_id")), pending_by_name)
                        self.message(m, span, output=False)
                for m in data.get("output") or []:
                    if isinstance(m, Mapping):
                        self.message({**m, "role": m.get("role") or "assistant"}, span, output=True)
                if span.get("error"):
                    last = b.steps[-1] if b.steps else None
                    if last is not None:
                        last.setdefault("extra", {})["error"] = span["error"]
            elif stype == "function":
                b.count()
                if not generations:
                    self._lone_function(span, data)
            elif stype == "response":
                b.count()
                if not generations:
                    agent = self.agent_of(span)
                    b.agent_step("", timestamp=span.get("ended_at"), metrics=agents_usage(data.get("usage")),
                                 extra={k: v for k, v in {"agent": agent, "response_id": data.get("response_id")}.items()
                                        if v})
            elif stype == "handoff":
                b.count()
                self.handoffs.append({"from_agent": data.get("from_agent"), "to_agent": data.get("to_agent")})
            elif stype == "agent":
                b.count()
                if data.get("name"):
                    self.agents.append(str(data["name"]))
            elif stype == "custom" and data.get("name") in _USAGE_SPANS:
                b.count()
            else:
                name = f" {data.get('name')!r}" if stype == "custom" and data.get("name") else ""
                b.skip(f"span type {stype!r}{name}", f"span {span.get('id')}")
        # Results no later generation repeated (the run ended on them): attach them now.
        for cid, name in self.calls:
            if ("tool", cid) in self.seen:
                continue
            self._take_result(cid, pending_by_name, name)
            if cid in self.results:
                content, extra = self.results.pop(cid)
                b.observe(cid, content, extra=extra)
        return b

    def _take_result(self, cid: str, pending: dict[str, list[Mapping[str, Any]]], name: str | None = None) -> None:
        """Pair call ``cid`` with the next function span of its name (the SDK records no call id)."""
        if cid in self.results:
            return
        if name is None:
            name = next((n for c, n in self.calls if c == cid), None)
        spans = pending.get(str(name)) if name else None
        if not spans:
            return
        span = spans.pop(0)
        data = obj(span.get("span_data"))
        extra: dict[str, Any] = {"span_id": span.get("id")}
        if span.get("error"):
            extra.update(status="error", error=span["error"])
        self.results[cid] = (data.get("output"), extra)

    def _lone_function(self, span: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """A function span no generation span asked for (a Responses-model trace): a call of its own."""
        b = self.b
        args, _ = parse_arguments(data.get("input"))
        cid = str(span.get("id"))
        step = b.steps[-1] if b.steps and b.steps[-1]["source"] == "agent" else None
        if step is None:
            agent = self.agent_of(span)
            step = b.agent_step("", timestamp=span.get("started_at"), extra={"agent": agent} if agent else None)
        b.add_tool_call(step, b.tool_call(cid, data.get("name"), args, extra={"call_id_from": "span id"}))
        extra: dict[str, Any] = {"status": "error", "error": span["error"]} if span.get("error") else {}
        b.observe(cid, data.get("output"), extra=extra or None)


class OpenAIAgentsTraceAdapter:
    """Agents SDK traces exported by a ``TracingProcessor`` (``Trace.export()``, ``Span.export()``)."""

    name = "openai-agents-trace"
    description = "OpenAI Agents SDK trace exports (trace and spans: agent, generation, function, handoff, response)"

    def sniff(self, path: Path) -> Sniff:
        """Accept ``{"data": [...]}``, a JSON list or JSONL of trace / span exports."""
        if path.suffix.lower() in _JSONL:
            first, why = sniff_jsonl_first(path)
            if why:
                return Sniff(False, why)
            if _is_trace_object(first):
                return Sniff(True, "JSONL of Agents SDK trace/span exports")
            return Sniff(False, "first line is not an Agents SDK trace or span (object: trace / trace.span)")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        objs = _trace_objects(doc)
        if objs is None:
            return Sniff(False, "not Agents SDK trace exports (objects `trace` / `trace.span`)")
        n = sum(1 for o in objs if o.get("object") == "trace.span")
        return Sniff(True, f"Agents SDK trace export: {len(objs) - n} trace(s), {n} spans")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trajectory per trace id."""
        objs = _read_trace_file(path)
        traces: dict[str, Mapping[str, Any]] = {}
        spans: dict[str, list[Mapping[str, Any]]] = {}
        bad = 0
        for o in objs:
            if not _is_trace_object(o):
                bad += 1
                continue
            tid = str(o.get("id") if o["object"] == "trace" else o.get("trace_id"))
            if o["object"] == "trace":
                traces[tid] = o
            else:
                spans.setdefault(tid, []).append(o)
        for tid in dict.fromkeys([*traces, *spans]):
            trace = traces.get(tid) or {"id": tid}
            members = spans.get(tid, [])
            reader = _TraceReader(trace, members)
            b = reader.read()
            if tid not in traces:
                b.warnings.append(f"trace {tid}: no trace object, only its spans")
            for _ in range(bad):
                b.skip("not a trace or span export")
            bad = 0
            if reader.agents:
                b.agent["name"] = reader.agents[0]
                b.agent["extra"] = {"agents": list(dict.fromkeys(reader.agents))}
            if reader.models:
                b.agent["model_name"] = max(set(reader.models), key=reader.models.count)
            b.session_id = str(trace.get("group_id") or tid)
            extra: dict[str, Any] = {"source_format": "openai-agents/trace", "trace_id": tid}
            if trace.get("workflow_name"):
                extra["workflow_name"] = trace["workflow_name"]
            if reader.handoffs:
                extra["handoffs"] = reader.handoffs
            if trace.get("metadata"):
                extra["metadata"] = trace["metadata"]
            traj = b.build(extra=extra)
            starts = [str(s["started_at"]) for s in members if s.get("started_at")]
            ends = [str(s["ended_at"]) for s in members if s.get("ended_at")]
            task = options.extra.get("task_name") or trace.get("workflow_name") or source_names(path)[0]
            trial = make_trial(
                traj, task_name=str(task), source_format="openai-agents-trace", source_path=str(path),
                source_ids={"trace_id": tid, "group_id": trace.get("group_id")},
                duration_seconds=seconds_between(min(starts), max(ends)) if starts and ends else None,
                trial_id=tid,
            )
            yield Converted(traj, trial, tid, f"{path}#{tid}" if len(traces) > 1 else str(path), b.warnings,
                            tally=b.tally())


