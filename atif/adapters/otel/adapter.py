"""Agent traces as trajectories: one trace -> one trial, nested agents -> subagent trajectories.

Within a trace, spans are ordered by start time. The trajectory of an agent (the outermost
agent span, or the trace itself when no span says it is an agent) is read from the model-call
and tool spans under it that no nested agent claims:

* the first model call's input messages open the conversation (system, user, earlier turns);
  each call's output is an agent step (text, reasoning, tool calls, token counts); input messages
  a later call adds beyond what came before (a new user turn, tool results) are mapped too, and
  the ones it repeats are counted as copies;
* a tool span answers the call with its id, else the latest unanswered call of its name
  (``extra.paired_by = "name"``), else it becomes an agent step with its own tool call;
* a nested agent becomes an embedded ``subagent_trajectories`` entry referenced from an
  observation of the step it ran in; a model call with neither messages nor output is skipped.

Spans whose parent is missing from the file are kept (they start a branch of the trace) and
counted in a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial
from atif.adapters.jsonio import iter_jsonl_lenient, load_json_cached, sniff_json_or_jsonl
from atif.adapters.otel.conventions import Message, llm_call, span_kind, tool_run
from atif.adapters.otel.spans import Span, spans_of
from atif.errors import AtifError

__all__ = ["OtelAdapter"]


def _marker(spans: list[Span]) -> str | None:
    for s in spans:
        if "openinference.span.kind" in s.attributes:
            return "OpenInference spans (openinference.span.kind)"
        if any(k.startswith("gen_ai.") for k in s.attributes) or any(
                str(e.get("name", "")).startswith("gen_ai.") for e in s.events):
            return "OpenTelemetry GenAI spans (gen_ai.* attributes)"
    return None


class OtelAdapter:
    """OpenTelemetry GenAI and OpenInference spans (OTLP/JSON or one span per line)."""

    name = "otel"
    description = "OpenTelemetry GenAI / OpenInference spans (OTLP/JSON, span JSONL)"

    def sniff(self, path: Path) -> Sniff:
        """Accept a ``.json`` OTLP export or span list, or a ``.jsonl`` of spans/exports, with GenAI or OpenInference attributes."""
        if not path.is_file():
            return Sniff(False, "not a file")
        doc, why = sniff_json_or_jsonl(path)
        if why:
            return Sniff(False, why)
        spans = spans_of(doc)
        if spans is None:
            return Sniff(False, "neither an OTLP/JSON export (resourceSpans) nor an exported span (context.trace_id)")
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return Sniff(True, _marker(spans) or "exported spans (context.trace_id); GenAI attributes may follow")
        reason = _marker(spans)
        return Sniff(reason is not None, reason or "spans without gen_ai.* or OpenInference attributes")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per trace (a bad line is reported with its number; the other spans still convert)."""
        spans: list[Span] = []
        bad: list[str] = []
        try:
            if path.suffix.lower() in (".jsonl", ".ndjson"):
                for n, doc, error in iter_jsonl_lenient(path):
                    got = spans_of(doc, f"line {n} ") if error is None else None
                    if got is None:
                        bad.append(f"line {n}: {error or 'not a span or an OTLP export'}")
                    else:
                        spans.extend(got)
            else:
                got = spans_of(load_json_cached(path))
                if got is None:
                    yield Failure(str(path), "neither an OTLP/JSON export nor a list of exported spans")
                    return
                spans = got
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        traces: dict[str, list[Span]] = {}
        for s in spans:
            traces.setdefault(s.trace_id, []).append(s)
        if not traces:
            yield Failure(str(path), "no spans" + (f" ({bad[0]})" if bad else ""))
            return
        for trace_id, trace in traces.items():
            try:
                yield _trace(path, trace_id, trace, bad, len(traces) > 1)
            except AtifError as exc:
                yield Failure(f"{path}#{trace_id}", str(exc))


def _trace(path: Path, trace_id: str, spans: list[Span], bad: list[str], many: bool) -> Converted:
    spans.sort(key=lambda s: (s.start_ns, s.start or ""))
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    orphans = [s for s in spans if s.parent_id and s.parent_id not in ids]
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    roots = children.get(None, [])
    agents = [s for s in spans if span_kind(s) == "agent"]
    top = next((a for a in agents if not _has_agent_ancestor(a, spans)), None)
    b, subagents = _agent(top, roots, children)
    for line in bad:
        b.skip("a line that is neither a span nor an OTLP export", line)
    if orphans:
        b.warnings.append(f"{len(orphans)} span(s) name a parent that is not in the file; read as roots of their branch")
    traj = b.build()
    if subagents:
        traj["subagent_trajectories"] = subagents
    service = next((s.resource.get("service.name") for s in spans if s.resource.get("service.name")), None)
    key = trace_id if many else path.stem
    trial = make_trial(traj, task_name=path.stem, source_format="otel", source_path=str(path),
                       source_ids={"trace_id": trace_id}, trial_id=key,
                       metadata={"service_name": service} if isinstance(service, str) else None)
    return Converted(traj, trial, key, f"{path}#{trace_id}" if many else str(path), b.warnings, tally=b.tally())


def _has_agent_ancestor(span: Span, spans: list[Span]) -> bool:
    by_id = {s.span_id: s for s in spans}
    node = by_id.get(span.parent_id or "")
    while node is not None:
        if span_kind(node) == "agent":
            return True
        node = by_id.get(node.parent_id or "")
    return False


def _scope(roots: list[Span], children: dict[str | None, list[Span]], top: Span | None) -> list[Span]:
    """The spans of an agent in start order, stopping at nested agents (which are included, not entered)."""
    out: list[Span] = []

    def walk(s: Span) -> None:
        out.append(s)
        if s is not top and span_kind(s) == "agent":
            return
        for c in children.get(s.span_id, []):
            walk(c)

    for r in roots:
        walk(r)
    return sorted(out, key=lambda s: (s.start_ns, s.start or ""))


def _agent(
    top: Span | None, roots: list[Span], children: dict[str | None, list[Span]]
) -> tuple[TrajectoryBuilder, list[dict[str, Any]]]:
    """The builder of one agent's trajectory and its nested agents' trajectories (built)."""
    a = top.attributes if top is not None else {}
    name = a.get("gen_ai.agent.name") or a.get("agent.name") or (top.name if top is not None else None)
    b = TrajectoryBuilder(agent_name=str(name or "otel"), model_name=a.get("gen_ai.request.model"),
                          session_id=a.get("gen_ai.conversation.id") or a.get("session.id"))
    conv = _Conversation(b)
    subagents: list[dict[str, Any]] = []
    for s in _scope(roots, children, top):
        kind = span_kind(s)
        if s is top:
            b.count()
            continue
        if kind == "agent":
            sub, nested = _agent(s, [s], children)
            b.read += sub.read
            for reason, n in sub.skips.items():
                b.skips[reason] = b.skips.get(reason, 0) + n
            b.warnings.extend(f"subagent {s.span_id}: {w}" for w in sub.warnings)
            sub.trajectory_id = f"span-{s.span_id}"
            built = sub.build()
            if nested:
                built["subagent_trajectories"] = nested
            subagents.append(built)
            if not b.steps:
                b.agent_step("", timestamp=s.start)
            b.steps[-1].setdefault("observation", {"results": []})["results"].append(
                {"content": None, "subagent_trajectory_ref": [{"trajectory_id": sub.trajectory_id}]})
        elif kind == "llm":
            conv.llm(s)
        elif kind == "tool":
            conv.tool(s)
        else:
            b.skip("a span that is neither an agent, a model call nor a tool", f"span {s.name!r}")
    if top is not None and not any(st["source"] == "agent" for st in b.steps):
        conv.agent_io(top)
    return b, subagents


class _Conversation:
    """Turns model-call and tool spans, in order, into steps."""

    def __init__(self, b: TrajectoryBuilder) -> None:
        self.b = b
        self.seen: list[tuple[str, str]] = []  # (role, text) of messages already in the trajectory
        self.answered: set[str] = set()

    def _key(self, m: Message) -> tuple[str, str]:
        calls = ",".join(str(c[0] or c[1]) for c in m.tool_calls)
        return m.role, f"{m.text}|{calls}|{m.tool_call_id or ''}"

    def _input(self, m: Message, ts: Any) -> None:
        b = self.b
        if m.role in ("system", "developer"):
            b.system(m.text, timestamp=ts)
        elif m.role == "tool":
            cid = str(m.tool_call_id) if m.tool_call_id else None
            if cid and cid in self.answered:
                b.skip("a tool result already read from its tool span", f"call {cid}")
                return
            b.observe(cid, m.text)
            if cid:
                self.answered.add(cid)
        elif m.role == "assistant":
            self._output(m, ts, None, None)
            return
        else:
            b.user(m.text, timestamp=ts)
        b.count()

    def _output(self, m: Message, ts: Any, metrics: dict[str, Any] | None, model: str | None) -> None:
        b = self.b
        calls = [b.tool_call(cid, name, args) for cid, name, args in m.tool_calls]
        b.agent_step(m.text, timestamp=ts, reasoning_content=m.reasoning or None, tool_calls=calls, metrics=metrics,
                     model_name=model if model and model != b.agent.get("model_name") else None)
        b.count()

    def llm(self, s: Span) -> None:
        inputs, outputs, metrics, model = llm_call(s)
        if not inputs and not outputs:
            self.b.skip("a model-call span without messages (content not captured)", f"span {s.name!r}")
            return
        if self.b.agent.get("model_name") is None and model:
            self.b.agent["model_name"] = model
        keys = [self._key(m) for m in inputs]
        n = 0
        while n < len(keys) and n < len(self.seen) and keys[n] == self.seen[n]:
            n += 1
        for _ in range(n):
            self.b.skip("a message repeated from an earlier model call", f"span {s.name!r}")
        for m in inputs[n:]:
            self._input(m, s.start)
        for i, m in enumerate(outputs):
            self._output(m, s.end or s.start, metrics if i == len(outputs) - 1 else None, model)
        self.seen = keys + [self._key(m) for m in outputs]

    def tool(self, s: Span) -> None:
        b = self.b
        cid, name, args, result = tool_run(s)
        cid = str(cid) if cid else None
        content = result if isinstance(result, str) or result is None else str(result)
        b.count()
        if cid and b.owner_of(cid) is not None:
            b.observe(cid, content)
            self.answered.add(cid)
            return
        for step in reversed(b.steps):
            for call in step.get("tool_calls") or []:
                if call["function_name"] == name and call["tool_call_id"] not in self.answered:
                    b.observe(call["tool_call_id"], content, extra={"paired_by": "name"})
                    self.answered.add(call["tool_call_id"])
                    return
        step = b.agent_step("", timestamp=s.start, tool_calls=[b.tool_call(cid, name, args)],
                            extra={"from_tool_span": True})
        call_id = step["tool_calls"][0]["tool_call_id"]
        b.observe(call_id, content)
        self.answered.add(call_id)

    def agent_io(self, top: Span) -> None:
        inputs, outputs, metrics, model = llm_call(top)
        for m in inputs:
            self._input(m, top.start)
        for m in outputs:
            self._output(m, top.end, metrics, model)
