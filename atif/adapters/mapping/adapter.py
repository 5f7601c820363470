"""The ``mapping`` adapter: applying a compiled mapping's rules to a runner's records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial, tool_call
from atif.adapters.jsonio import iter_jsonl, load_json_cached
from atif.adapters.mapping.spec import SOURCES, MappingSpec, Rule, load_mapping
from atif.adapters.values import seconds_between, text_of
from atif.errors import AdapterError, AtifError
from atif.schema.identity import stable_id

__all__ = ["MappingAdapter", "convert_document"]

_MAX_SHOWN_UNMATCHED = 5


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _num(value: Any, *, integer: bool) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    return int(value) if integer else float(value)


def _reward(value: Any) -> float | dict[str, float] | None:
    if isinstance(value, Mapping):
        named = {str(k): _num(v, integer=False) for k, v in value.items()}
        return {k: float(v) for k, v in named.items() if v is not None} or None
    num = _num(value, integer=False)
    if num is None:
        return None
    return num if 0.0 <= num <= 1.0 else {"reward": num}


def _preview(record: Any, limit: int = 160) -> str:
    text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
        isinstance(p, Mapping) and p.get("type") in ("text", "image") and
        (p.get("type") == "text" or isinstance(p.get("source"), Mapping)) for p in value
    ) and any(p.get("type") == "image" for p in value):
        return value  # already ATIF content parts
    return text_of(value)


@dataclass(slots=True)
class _Run:
    """State of one trial being built."""

    builder: TrajectoryBuilder
    where: str
    unmatched: list[str] = field(default_factory=list)
    n_unmatched: int = 0


def _apply_rule(run: _Run, rule: Rule, record: Any, idx: int) -> None:
    b = run.builder
    step: dict[str, Any] | None = None
    if rule.source is not None:
        src = rule.source if isinstance(rule.source, str) else rule.source(record)
        if src not in SOURCES:
            raise AdapterError(f"{run.where}: record {idx}: rules[{rule.index}].source gave {src!r}; "
                               f"expected one of {', '.join(SOURCES)}")
        f = {k: e(record) for k, e in rule.fields.items()}
        extra = {k: v for k, e in (rule.extra or {}).items() if (v := e(record)) is not None}
        message = _message(f.get("message"))
        if src == "agent":
            calls = _calls(run, rule, record, idx)
            metrics = None
            if rule.metrics:
                metrics = {
                    k: _num(e(record), integer=k != "cost_usd") for k, e in rule.metrics.items()
                }
                metrics = {k: v for k, v in metrics.items() if v is not None} or None
            step = b.agent_step(
                message,
                timestamp=f.get("timestamp"),
                model_name=_str(f.get("model_name")),
                reasoning_content=_str(f.get("reasoning_content")),
                tool_calls=calls,
                metrics=metrics,
                extra=extra or None,
            )
        else:
            add = b.system if src == "system" else b.user
            step = add(message, timestamp=f.get("timestamp"), extra=extra or None)
        if f.get("timestamp") is not None and step.get("timestamp") is None:
            b.warnings.append(f"record {idx}: rules[{rule.index}].timestamp {f['timestamp']!r} is not a time")
    if rule.observation is not None:
        _observe(run, rule, record, step)


def _calls(run: _Run, rule: Rule, record: Any, idx: int) -> list[dict[str, Any]]:
    if not rule.calls:
        return []
    items = rule.calls["each"](record)
    if items is None:
        return []
    if not isinstance(items, list):
        items = [items]
    calls = []
    for n, item in enumerate(items, 1):
        cid = _str(rule.calls["id"](item)) if "id" in rule.calls else None
        name = rule.calls["name"](item)
        args = rule.calls["arguments"](item) if "arguments" in rule.calls else {}
        extra = {k: v for k, e in (rule.call_extra or {}).items() if (v := e(item)) is not None}
        call, warning = tool_call(cid or f"call_{len(run.builder) + 1}_{n}", name, args, extra=extra or None)
        if warning:
            run.builder.warnings.append(f"record {idx}: tool call {call['tool_call_id']!r}: {warning}")
        calls.append(call)
    return calls


def _observe(run: _Run, rule: Rule, record: Any, step: dict[str, Any] | None) -> None:
    assert rule.observation is not None
    items = [record]
    if "each" in rule.observation:
        got = rule.observation["each"](record)
        items = got if isinstance(got, list) else [] if got is None else [got]
    b = run.builder
    for item in items:
        cid = _str(rule.observation["source_call_id"](item)) if "source_call_id" in rule.observation else None
        content = rule.observation["content"](item)
        if content is not None and not isinstance(content, (str, list)):
            content = _str(content)
        extra = {k: v for k, e in (rule.obs_extra or {}).items() if (v := e(item)) is not None}
        if cid is not None and b.owner_of(cid) is None and step is not None:
            # The call is unknown but this record made a step: keep the result with it.
            step.setdefault("observation", {"results": []})["results"].append(
                {"content": content, "extra": {**extra, "unmatched_call_id": cid}}
            )
            b.warnings.append(f"tool result for unknown call id {cid!r} attached to step {step['step_id']}")
            continue
        if cid is None and step is not None:
            result: dict[str, Any] = {"content": content}
            if extra:
                result["extra"] = extra
            step.setdefault("observation", {"results": []})["results"].append(result)
            continue
        b.observe(cid, content, extra=extra or None)


def _timespan(steps: list[dict[str, Any]]) -> float | None:
    times = []
    for s in steps:
        ts = s.get("timestamp")
        if isinstance(ts, str):
            try:
                times.append(datetime.fromisoformat(ts))
            except ValueError:
                continue
    if len(times) < 2:
        return None
    secs = (max(times) - min(times)).total_seconds()
    return round(secs, 6)


def _trial_docs(m: MappingSpec, doc: Any, where: str) -> list[tuple[str, Any]]:
    """``(label, trial document)`` pairs: ``trials`` splits the file, ``group_by`` its records."""
    docs: list[tuple[str, Any]] = [(where, doc)]
    if "trials" in m.top:
        got = m.top["trials"](doc)
        if not isinstance(got, list):
            raise AdapterError(f"{where}: trials: {m.top['trials'].text!r} gave "
                               f"{type(got).__name__}, not a list of trial documents")
        docs = [(f"{where}#{i}", d) for i, d in enumerate(got)]
    if "group_by" not in m.top:
        return docs
    out: list[tuple[str, Any]] = []
    for label, d in docs:
        groups: dict[str, list[Any]] = {}
        for rec in _records(m, d, label):
            key = _str(m.top["group_by"](rec))
            groups.setdefault(key or "", []).append(rec)
        out.extend((f"{label}#{k}", g) for k, g in groups.items())
    return out


def _records(m: MappingSpec, doc: Any, where: str) -> list[Any]:
    got = m.top["records"](doc) if "records" in m.top else doc
    if got is None:
        return []
    if not isinstance(got, list):
        expr = m.top["records"].text if "records" in m.top else "@"
        raise AdapterError(f"{where}: records: {expr!r} gave {type(got).__name__}, not a list")
    return got


def _handoff(m: MappingSpec, doc: Any, top: dict[str, Any], source: str, label: str) -> Converted:
    """The conversation read by a standard adapter, in the mapping's envelope (task, ids, reward, metadata)."""
    from atif.adapters.chatlog import ChatLogAdapter
    from atif.adapters.registry import get_adapter

    adapter = get_adapter(str(m.handoff))
    assert isinstance(adapter, ChatLogAdapter)
    conversation = top.pop("messages", None)
    if conversation is None:
        raise AdapterError(f"{label}: messages: {m.top['messages'].text!r} found nothing")
    try:
        inner = adapter.build_conversation(conversation, Path(source))
    except AdapterError as exc:
        raise AdapterError(f"{label}: messages: {m.top['messages'].text!r}: {exc}") from exc
    traj = inner.trajectory or {}
    agent = {k: _str(e(doc)) for k, e in m.agent.items()}
    for k, v in agent.items():
        if v:
            traj["agent"]["model_name" if k == "model_name" else k] = v
    if _str(top.get("session_id")):
        traj["session_id"] = _str(top.get("session_id"))
    traj["extra"] = {**(traj.get("extra") or {}), "source_format": f"mapping/{m.name}", "mapping": m.path.name,
                     "conversation_format": m.handoff}
    trial_id = _str(top.get("trial_id"))
    duration = _num(top.get("duration_seconds"), integer=False)
    if duration is None:
        duration = seconds_between(top.get("started_at"), top.get("finished_at"))
    metadata = {k: v for k, e in m.metadata.items() if (v := e(doc)) is not None}
    trial = make_trial(
        traj, task_name=_str(top.get("task_name")) or Path(source).name.split(".", 1)[0] or m.name,
        source_format=f"mapping/{m.name}", source_path=source,
        source_ids={"trial_id": trial_id, "session_id": _str(top.get("session_id"))},
        metadata={"mapping": str(m.path), "conversation_format": m.handoff, **metadata},
        reward=_reward(top.get("reward")), error=_str(top.get("error")),
        duration_seconds=duration if duration is not None and duration >= 0 else None, trial_id=trial_id)
    key = trial_id or _str(top.get("session_id")) or inner.trial_key
    return Converted(traj, trial, trial_key=key, source=label,
                     warnings=inner.warnings, instruction=_str(top.get("instruction")), tally=inner.tally)


def convert_document(m: MappingSpec, doc: Any, *, source: str, label: str, records: list[Any]) -> Converted:
    """Apply a mapping to one trial document whose records are given (or hand its messages to an adapter)."""
    top = {k: e(doc) for k, e in m.top.items() if k not in ("trials", "group_by", "records")}
    if m.handoff is not None:
        return _handoff(m, doc, top, source, label)
    agent = {k: e(doc) for k, e in m.agent.items()}
    trial_id = _str(top.get("trial_id"))
    session = _str(top.get("session_id")) or trial_id or stable_id(m.name, records)
    builder = TrajectoryBuilder(
        agent_name=_str(agent.get("name")) or m.name,
        agent_version=_str(agent.get("version")) or "unknown",
        model_name=_str(agent.get("model_name")),
        session_id=session,
    )
    run = _Run(builder, label)
    for idx, record in enumerate(records):
        for rule in m.rules:
            if rule.when is None or rule.when(record):
                if not rule.skip:
                    _apply_rule(run, rule, record, idx)
                break
        else:
            run.n_unmatched += 1
            if len(run.unmatched) < _MAX_SHOWN_UNMATCHED:
                run.unmatched.append(f"#{idx} {_preview(record)}")
    warnings = []
    if run.n_unmatched:
        more = f" (+{run.n_unmatched - len(run.unmatched)} more)" if run.n_unmatched > len(run.unmatched) else ""
        warnings.append(
            f"unmatched records: {run.n_unmatched} of {len(records)} in {label} matched no rule: "
            + "; ".join(run.unmatched) + more
        )
    trajectory = builder.build(extra={"source_format": f"mapping/{m.name}", "mapping": m.path.name})
    warnings.extend(builder.warnings)
    duration = _num(top.get("duration_seconds"), integer=False)
    if duration is None:
        duration = seconds_between(top.get("started_at"), top.get("finished_at"))
    metadata = {k: v for k, e in m.metadata.items() if (v := e(doc)) is not None}
    task = _str(top.get("task_name")) or m.name
    trial = make_trial(
        trajectory,
        task_name=task,
        source_format=f"mapping/{m.name}",
        source_path=source,
        source_ids={"trial_id": trial_id, "session_id": _str(top.get("session_id"))},
        metadata={"mapping": str(m.path), **metadata},
        reward=_reward(top.get("reward")),
        error=_str(top.get("error")),
        duration_seconds=duration if duration is not None and duration >= 0 else _timespan(trajectory["steps"]),
        trial_id=trial_id,
    )
    return Converted(
        trajectory,
        trial,
        trial_key=trial_id or session,
        source=source,
        warnings=warnings,
        instruction=_str(top.get("instruction")),
    )


class MappingAdapter:
    """Any JSON / JSONL runner output, read through a declarative YAML mapping (``--mapping``)."""

    name = "mapping"
    description = "any JSON or JSONL runner output, through a YAML mapping of JMESPath expressions (--mapping)"

    def sniff(self, path: Path) -> Sniff:
        """Accept JSON / JSONL files (only the mapping can tell whether they fit)."""
        if path.is_file() and path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
            return Sniff(True, "a JSON file; the mapping decides how to read it")
        return Sniff(False, "the mapping adapter reads .json, .jsonl and .ndjson files")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """Yield one trial per trial document (or group) of the file."""
        if options.mapping is None:
            raise AdapterError("the mapping adapter needs a mapping file (--mapping FILE)")
        m = load_mapping(options.mapping)
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            doc: Any = [value for _, value in iter_jsonl(path)]
        else:
            doc = load_json_cached(path)
        grouped = "group_by" in m.top
        for label, tdoc in _trial_docs(m, doc, str(path)):
            try:
                records = [] if m.handoff else tdoc if grouped else _records(m, tdoc, label)
                yield convert_document(m, tdoc, source=str(path), label=label, records=records)
            except AtifError as exc:
                yield Failure(label, str(exc))
