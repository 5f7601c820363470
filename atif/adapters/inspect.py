"""Inspect AI eval logs (``.json`` and the ``.eval`` zip) to ATIF.

The log is read as plain data (``zipfile`` + ``orjson``; ``inspect_ai`` is never imported),
so any version of Inspect that wrote it can be read without installing it.

* One trajectory per sample × epoch.
* Steps come from ``sample.messages``: system, user and assistant messages become steps;
  a tool message is the observation of the assistant step whose ``tool_calls`` hold its
  ``tool_call_id``, with a tool error kept in the result's ``extra``. Assistant
  ``reasoning`` content becomes ``reasoning_content``.
* Timestamps and usage come from ``sample.events``: each assistant message is matched to
  the model event whose output produced it (by message id, else in order); the step takes
  the event's completion time, model and token usage. Inspect's ``input_tokens`` exclude
  cache reads and writes, so prompt tokens are input + cache read + cache write (logs
  from older versions, whose ``total_tokens`` show the input already included the cache,
  are read as such). Messages of the opening prompt take the sample's start time.
* The reward is the sample's score: letter grades C / I / P / N are 1 / 0 / 0.5 / 0,
  booleans 1 / 0, numbers in [0, 1] as they are; several scorers (or one outside [0, 1])
  give named rewards, the headline scorer first.
* The task name is ``<eval.task>/<sample id>``; the sample's input is its instruction.

``.eval`` archives are read member by member within size and compression-ratio limits
(:mod:`atif.adapters.archive`); current Inspect versions compress members with Zstandard.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from atif.adapters.archive import Archive
from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import TrajectoryBuilder, make_trial, tool_call
from atif.adapters.jsonio import load_json_cached, sniff_json
from atif.adapters.values import image_part, iso_timestamp, seconds_between, text_of
from atif.errors import AdapterError, AtifError, ParseError
from atif.schema.identity import stable_id

__all__ = ["InspectAdapter", "grade_value", "read_eval_log"]

_LETTER_GRADES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_ATTACHMENT = "attachment://"
_BROKEN = "__atif_unreadable__"


def _object(doc: Any, path: Path, member: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ParseError(f"{member}: a JSON {type(doc).__name__}, not an object", path=str(path))
    return doc


def read_eval_log(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The log header (everything but samples) and an iterator over its samples.

    Reads ``.eval`` archives (``header.json`` + ``samples/*.json``; an unfinished run's
    ``_journal/start.json`` stands in for a missing header) and ``.json`` logs.
    """
    if path.suffix.lower() == ".eval" or zipfile.is_zipfile(path):
        return _read_eval_zip(path)
    doc = load_json_cached(path)
    if not isinstance(doc, Mapping):
        raise AdapterError(f"{path}: not an Inspect log (a JSON {type(doc).__name__})")
    header = {k: v for k, v in doc.items() if k != "samples"}
    samples = [s for s in doc.get("samples") or [] if isinstance(s, Mapping)]
    return header, iter(samples)  # type: ignore[arg-type]


def _read_eval_zip(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    archive = Archive(path)
    try:
        if "header.json" in archive.members:
            header = _object(archive.json("header.json"), path, "header.json")
        elif "_journal/start.json" in archive.members:
            header = _object(archive.json("_journal/start.json"), path, "_journal/start.json")
            header.setdefault("status", "started")
        else:
            raise AdapterError(f"{path}: a zip archive without header.json: not an Inspect .eval log")
        if "reductions" not in header and "reductions.json" in archive.members:
            header["reductions"] = archive.json("reductions.json")
    except BaseException:
        archive.close()
        raise
    names = sorted(n for n in archive.members if n.startswith("samples/") and n.endswith(".json"))

    def samples() -> Iterator[dict[str, Any]]:
        try:
            for name in names:
                try:
                    yield archive.json(name)  # type: ignore[misc]
                except ParseError as exc:  # one broken sample must not hide the others
                    yield {_BROKEN: str(exc), "id": name.removeprefix("samples/").removesuffix(".json")}
        finally:
            archive.close()

    return header, samples()


def grade_value(value: Any) -> float | None:
    """A score value as a number: C/I/P/N letter grades, booleans, numbers, numeric strings."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        v = value.strip()
        if v in _LETTER_GRADES:
            return _LETTER_GRADES[v]
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _reward(scores: Mapping[str, Any], headline: str | None) -> float | dict[str, float] | None:
    named: dict[str, float] = {}
    order = sorted(scores, key=lambda n: (n != headline,))  # headline first, others as written
    for name in order:
        score = scores[name]
        value = score.get("value") if isinstance(score, Mapping) else score
        if isinstance(value, Mapping):
            for key, v in value.items():
                num = grade_value(v)
                if num is not None:
                    named[f"{name}/{key}"] = num
            continue
        num = grade_value(value)
        if num is not None:
            named[name] = num
    named = {k: v for k, v in named.items() if math.isfinite(v)}
    if not named:
        return None
    if len(named) == 1:
        (only,) = named.values()
        if 0.0 <= only <= 1.0:
            return only
    return named


def _resolve(value: Any, attachments: Mapping[str, Any]) -> Any:
    """Replace ``attachment://<hash>`` references by the attached content."""
    if not attachments:
        return value
    if isinstance(value, str):
        if value.startswith(_ATTACHMENT):
            return attachments.get(value[len(_ATTACHMENT):], value)
        return value
    if isinstance(value, list):
        return [_resolve(v, attachments) for v in value]
    if isinstance(value, Mapping):
        return {k: _resolve(v, attachments) for k, v in value.items()}
    return value


def _content(content: Any) -> str | list[dict[str, Any]]:
    """Text of an Inspect message content, or text and image parts when it holds images."""
    if not isinstance(content, list):
        return text_of(content)
    parts: list[dict[str, Any]] = []
    has_image = False
    for block in content:
        if not isinstance(block, Mapping):
            continue
        btype = block.get("type")
        if btype == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif btype == "image":
            img = image_part(block.get("image"))
            if img is not None:
                parts.append(img)
                has_image = True
            else:
                parts.append({"type": "text", "text": "[image]"})
        elif btype in ("audio", "video", "document"):
            parts.append({"type": "text", "text": f"[{btype}]"})
        elif btype == "data" and block.get("data") is not None:
            parts.append({"type": "text", "text": orjson.dumps(block["data"], option=orjson.OPT_SORT_KEYS).decode()})
    if has_image:
        return parts
    return "\n".join(p["text"] for p in parts)


def _reasoning(content: Any) -> tuple[str | None, bool]:
    """Reasoning text of an assistant message, and whether some of it was redacted."""
    if not isinstance(content, list):
        return None, False
    texts: list[str] = []
    redacted = False
    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "reasoning":
            if block.get("redacted"):
                redacted = True
                summary = block.get("summary")
                if isinstance(summary, str) and summary.strip():
                    texts.append(summary)
                continue
            text = block.get("reasoning")
            if isinstance(text, str) and text.strip():
                texts.append(text)
    return ("\n\n".join(texts) or None), redacted


def _usage(usage: Any) -> dict[str, Any] | None:
    """Step metrics from an Inspect ``ModelUsage``."""
    if not isinstance(usage, Mapping):
        return None
    inp = int(usage.get("input_tokens") or 0)
    out = usage.get("output_tokens")
    read = int(usage.get("input_tokens_cache_read") or 0)
    write = int(usage.get("input_tokens_cache_write") or 0)
    total = usage.get("total_tokens")
    prompt = inp + read + write
    if (read or write) and isinstance(total, int) and isinstance(out, int) and total == inp + out:
        prompt = inp  # an older log whose input_tokens already included the cache
    extra: dict[str, Any] = {}
    if write:
        extra["cache_write_tokens"] = write
    if usage.get("reasoning_tokens"):
        extra["reasoning_tokens"] = usage["reasoning_tokens"]
    metrics: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": out}
    if usage.get("input_tokens_cache_read") is not None:
        metrics["cached_tokens"] = read
    if isinstance(usage.get("total_cost"), (int, float)):
        metrics["cost_usd"] = float(usage["total_cost"])
    if extra:
        metrics["extra"] = extra
    return {k: v for k, v in metrics.items() if v is not None}


def _model_events(events: list[Any]) -> tuple[dict[str, Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Model events that produced a message: by output message id, and in order."""
    by_id: dict[str, Mapping[str, Any]] = {}
    ordered: list[Mapping[str, Any]] = []
    for ev in events:
        if not isinstance(ev, Mapping) or ev.get("event") != "model":
            continue
        output = ev.get("output") or {}
        choices = output.get("choices") if isinstance(output, Mapping) else None
        if not choices:
            continue
        ordered.append(ev)
        msg = choices[0].get("message") if isinstance(choices[0], Mapping) else None
        if isinstance(msg, Mapping) and msg.get("id"):
            by_id[str(msg["id"])] = ev
    return by_id, ordered


def _event_inputs(ev: Mapping[str, Any], pool: list[Any]) -> list[Any]:
    """The messages a model event sent: inline ``input``, or ``input_refs`` ranges into the
    sample's pooled ``events_data.messages`` (Inspect 0.3.2xx and later)."""
    if ev.get("input"):
        return list(ev["input"])
    out: list[Any] = []
    for ref in ev.get("input_refs") or []:
        if isinstance(ref, list) and len(ref) == 2 and all(isinstance(i, int) for i in ref):
            out.extend(pool[ref[0]:ref[1]])
    return out


def _first_inputs(events: list[Mapping[str, Any]], pool: list[Any]) -> dict[str, str | None]:
    """For each message id, the start time of the first model call that received it."""
    seen: dict[str, str | None] = {}
    for ev in events:
        for m in _event_inputs(ev, pool):
            if isinstance(m, Mapping) and m.get("id") and str(m["id"]) not in seen:
                seen[str(m["id"])] = iso_timestamp(ev.get("timestamp"))
    return seen


def _tool_definitions(events: list[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    for ev in events:
        tools = ev.get("tools")
        if isinstance(tools, list) and tools:
            defs = []
            for t in tools:
                if isinstance(t, Mapping) and t.get("name"):
                    fn = {k: t[k] for k in ("name", "description", "parameters") if t.get(k) is not None}
                    defs.append({"type": "function", "function": fn})
            return defs or None
    return None


def _instruction(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [_content(m.get("content")) for m in value if isinstance(m, Mapping) and m.get("role") == "user"]
        joined = "\n\n".join(t for t in texts if isinstance(t, str) and t)
        return joined or None
    return None


def convert_sample(
    header: Mapping[str, Any], sample: Mapping[str, Any], *, source: str, source_format: str
) -> Converted:
    """One sample × epoch of an Inspect log as a ``Converted`` trial."""
    spec = header.get("eval") or {}
    attachments = sample.get("attachments") or {}
    messages = _resolve(sample.get("messages") or [], attachments)
    events = _resolve([e for e in sample.get("events") or [] if isinstance(e, Mapping)
                       and e.get("event") == "model"], attachments)
    by_id, ordered = _model_events(events)
    events_data = sample.get("events_data") or {}
    pool = events_data.get("messages") if isinstance(events_data, Mapping) else None
    first_input = _first_inputs(ordered, pool if isinstance(pool, list) else [])
    sample_id = sample.get("id")
    epoch = int(sample.get("epoch") or 1)
    task = str(spec.get("task") or "inspect")
    uuid = sample.get("uuid")
    key = str(uuid) if uuid else stable_id(spec.get("eval_id"), sample_id, epoch)
    started = sample.get("started_at") or (ordered[0].get("timestamp") if ordered else None)

    builder = TrajectoryBuilder(
        agent_name=str(spec.get("solver") or "inspect-ai"),
        agent_version=str((spec.get("packages") or {}).get("inspect_ai") or "unknown"),
        model_name=str(spec["model"]) if spec.get("model") else None,
        session_id=key,
        tool_definitions=_tool_definitions(ordered),
        agent_extra=_agent_extra(header),
    )
    # Old logs lack message ids: then assistant messages take the model events in order. When
    # ids do match, an unmatched event is someone else's call (a grader model, a sub-agent).
    message_ids = {str(m.get("id")) for m in messages if isinstance(m, Mapping) and m.get("id")}
    unmatched = [] if message_ids & set(by_id) else list(ordered)
    seen_ai = False
    for msg in messages:
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role")
        mid = str(msg["id"]) if msg.get("id") else None
        extra = {"message_id": mid} if mid else {}
        if role in ("system", "user") and not (role == "user" and msg.get("tool_call_id")):
            ts = started if not seen_ai else first_input.get(mid or "")
            add = builder.system if role == "system" else builder.user
            add(_content(msg.get("content")), timestamp=ts, extra=extra or None)
        elif role == "assistant":
            seen_ai = True
            ev = by_id.get(mid or "") or (unmatched.pop(0) if unmatched else None)
            _assistant(builder, msg, ev, extra)
        elif role == "tool" or (role == "user" and msg.get("tool_call_id")):
            _tool(builder, msg)

    traj_extra = {
        "source_format": source_format,
        "task": task,
        "sample_id": sample_id,
        "epoch": epoch,
        "eval_id": spec.get("eval_id"),
        "run_id": spec.get("run_id"),
    }
    trajectory = builder.build(extra={k: v for k, v in traj_extra.items() if v is not None}) if messages else None
    scores = sample.get("scores") or {}
    headline = ((header.get("results") or {}).get("headline") or {}).get("scorer") if isinstance(
        header.get("results"), Mapping) else None
    if headline is None and spec.get("scorers"):
        first = spec["scorers"][0]
        headline = first.get("name") if isinstance(first, Mapping) else None
    error = sample.get("error")
    error_text = None
    if isinstance(error, Mapping):
        error_text = str(error.get("message") or error.get("traceback") or "error")
    elif error:
        error_text = str(error)
    meta: dict[str, Any] = {}
    if scores:
        meta["scores"] = {
            name: {k: s.get(k) for k in ("value", "answer", "explanation") if s.get(k) is not None}
            if isinstance(s, Mapping) else {"value": s}
            for name, s in scores.items()
        }
    if sample.get("target") not in (None, "", []):
        meta["target"] = sample["target"]
    if sample.get("limit"):
        meta["limit"] = sample["limit"]
    if header.get("status") not in (None, "success"):
        meta["log_status"] = header.get("status")
    trial = make_trial(
        trajectory,
        task_name=f"{task}/{sample_id}",
        source_format=source_format,
        source_path=source,
        source_ids={
            "eval_id": spec.get("eval_id"),
            "run_id": spec.get("run_id"),
            "task_id": spec.get("task_id"),
            "sample_id": sample_id,
            "sample_uuid": uuid,
        },
        metadata=meta,
        reward=_reward(scores, headline) if isinstance(scores, Mapping) else None,
        error=error_text,
        duration_seconds=seconds_between(sample.get("started_at"), sample.get("completed_at"))
        if sample.get("completed_at") else _total_time(sample),
        trial_id=key,
        epoch=epoch,
    )
    if trajectory is None:
        trial.messages = None
    warnings = list(builder.warnings)
    if trajectory is None:
        warnings.append(f"sample {sample_id} epoch {epoch} has no messages; wrote a trial without trajectory")
    return Converted(trajectory, trial, trial_key=f"epoch{epoch}-{key}", source=source,
                     warnings=warnings, instruction=_instruction(_resolve(sample.get("input"), attachments)))


def _total_time(sample: Mapping[str, Any]) -> float | None:
    t = sample.get("total_time")
    return float(t) if isinstance(t, (int, float)) and t >= 0 else None


def _agent_extra(header: Mapping[str, Any]) -> dict[str, Any] | None:
    plan = header.get("plan") or {}
    steps = plan.get("steps") if isinstance(plan, Mapping) else None
    solvers = [s.get("solver") for s in steps or [] if isinstance(s, Mapping) and s.get("solver")]
    return {"plan": solvers} if solvers else None


def _assistant(
    builder: TrajectoryBuilder, msg: Mapping[str, Any], ev: Mapping[str, Any] | None, extra: dict[str, Any]
) -> None:
    calls = []
    for n, tc in enumerate(msg.get("tool_calls") or [], 1):
        if not isinstance(tc, Mapping):
            continue
        cid = tc.get("id") or f"call_{len(builder) + 1}_{n}"
        call_extra: dict[str, Any] = {}
        if tc.get("parse_error"):
            call_extra = {"invalid": True, "error": str(tc["parse_error"])}
        call, warning = tool_call(cid, tc.get("function"), tc.get("arguments"), extra=call_extra or None)
        if warning:
            builder.warnings.append(f"tool call {cid!r}: {warning}")
        calls.append(call)
    reasoning, redacted = _reasoning(msg.get("content"))
    if redacted:
        extra["reasoning_redacted"] = True
    output = (ev or {}).get("output") or {}
    choices = output.get("choices") or []
    stop = choices[0].get("stop_reason") if choices and isinstance(choices[0], Mapping) else None
    if isinstance(stop, str):
        extra["stop_reason"] = stop
    if ev is not None and ev.get("error"):
        extra["model_error"] = str(ev["error"])
    model = msg.get("model") or output.get("model") or (ev or {}).get("model")
    builder.agent_step(
        _content(msg.get("content")),
        timestamp=(ev or {}).get("completed") or (ev or {}).get("timestamp"),
        model_name=str(model) if model else None,
        reasoning_content=reasoning,
        tool_calls=calls,
        metrics=_usage(output.get("usage")),
        extra=extra or None,
    )


def _tool(builder: TrajectoryBuilder, msg: Mapping[str, Any]) -> None:
    content = _content(msg.get("content"))
    error = msg.get("error")
    extra: dict[str, Any] = {}
    if isinstance(error, Mapping) or error:
        message = error.get("message") if isinstance(error, Mapping) else str(error)
        extra = {"status": "error", "error": message}
        if isinstance(error, Mapping) and error.get("type"):
            extra["error_type"] = error["type"]
        if not content:
            content = str(message)  # what the model was shown
    builder.observe(msg.get("tool_call_id"), content, extra=extra or None)


def _sample_order(header: Mapping[str, Any]) -> dict[Any, int]:
    ids = ((header.get("eval") or {}).get("dataset") or {}).get("sample_ids") or []
    return {sid: i for i, sid in enumerate(ids)}


class InspectAdapter:
    """Inspect AI eval logs: ``.eval`` archives and ``.json`` logs, one trial per sample × epoch."""

    name = "inspect"
    description = "Inspect AI eval logs (.eval zip and .json), one trajectory per sample x epoch"

    def sniff(self, path: Path) -> Sniff:
        """Accept a zip with ``header.json`` / ``_journal/start.json``, or JSON with ``eval.task``."""
        if not path.is_file():
            return Sniff(False, "not a file")
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return Sniff(False, "a JSON Lines file; Inspect logs are .eval archives or .json documents")
        if path.suffix.lower() == ".eval" or zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as zf:
                    names = set(zf.namelist())
            except (zipfile.BadZipFile, OSError) as exc:
                return Sniff(False, f"not a readable zip archive ({exc})")
            if "header.json" in names or "_journal/start.json" in names:
                n = sum(1 for x in names if x.startswith("samples/"))
                return Sniff(True, f"Inspect .eval archive with {n} samples")
            return Sniff(False, "a zip archive without header.json")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        if not isinstance(doc, Mapping):
            return Sniff(False, f"a JSON {type(doc).__name__}, not an Inspect log object")
        spec = doc.get("eval")
        if not isinstance(spec, Mapping) or "task" not in spec:
            return Sniff(False, "no `eval.task`: not an Inspect log")
        return Sniff(True, f"Inspect JSON log with {len(doc.get('samples') or [])} samples")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """Yield one trial per sample × epoch, ordered by dataset order then epoch."""
        header, samples = read_eval_log(path)
        if not isinstance(header.get("eval"), Mapping):
            raise AdapterError(f"{path}: no `eval` block: not an Inspect log")
        fmt = "inspect/eval" if path.suffix.lower() == ".eval" else "inspect/json"
        order = _sample_order(header)
        items: list[tuple[tuple[Any, ...], Converted | Failure]] = []
        for i, sample in enumerate(samples):
            if not isinstance(sample, Mapping):
                continue
            sid, epoch = sample.get("id"), sample.get("epoch") or 1
            sort_key = (order.get(sid, len(order)), str(sid), epoch if isinstance(epoch, int) else 0, i)
            if _BROKEN in sample:
                items.append((sort_key, Failure(f"{path}#{sid}", str(sample[_BROKEN]))))
                continue
            try:
                items.append((sort_key, convert_sample(header, sample, source=str(path), source_format=fmt)))
            except AtifError as exc:
                items.append((sort_key, Failure(f"{path}#{sid}/epoch{epoch}", str(exc))))
            except (TypeError, ValueError, KeyError) as exc:
                items.append((sort_key, Failure(f"{path}#{sid}/epoch{epoch}",
                                                f"malformed sample: {type(exc).__name__}: {exc}")))
        if not items:
            status = header.get("status")
            yield Failure(str(path), f"the log holds no samples (status: {status})", skipped=True)
            return
        for _, item in sorted(items, key=lambda t: t[0]):
            yield item
