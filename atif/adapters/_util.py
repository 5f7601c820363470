"""Helpers shared by every adapter: reading input, canonical JSON, ids, timestamps, building steps.

Adapters turn a runner's output into an ATIF v1.8 dict with :class:`TrajectoryBuilder`
(sequential step ids, tool results merged into the agent step that made the call,
final metrics summed from step metrics) and into a :class:`~atif.trial.Trial` with
:func:`make_trial` (totals and OpenAI-format messages taken from the trajectory).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from atif.errors import ParseError
from atif.schema.identity import content_hash, stable_id
from atif.schema.validate import load_json
from atif.trial import Trial, trajectory_messages, trajectory_totals

__all__ = [
    "ATIF_VERSION",
    "TrajectoryBuilder",
    "content_hash",
    "dump_json",
    "dump_line",
    "iso_timestamp",
    "iter_jsonl",
    "iter_records",
    "load_json_cached",
    "make_trial",
    "obj",
    "parse_arguments",
    "read_bytes_head",
    "read_json",
    "safe_name",
    "sniff_json",
    "sniff_jsonl_first",
    "source_names",
    "stable_id",
    "text_of",
    "tool_call",
]

ATIF_VERSION = "ATIF-v1.8"
"""The version every adapter writes."""

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


# ---------------------------------------------------------------------------------------------
# Canonical JSON and ids
# ---------------------------------------------------------------------------------------------


def dump_json(obj: Any, *, indent: bool = True) -> bytes:
    """Canonical JSON bytes: sorted keys, UTF-8, two-space indent (or compact), trailing newline.

    The same object always gives the same bytes, which makes re-runs byte-identical.
    """
    opt = _SORTED | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, option=opt) + b"\n"


def dump_line(obj: Any) -> bytes:
    """One compact, key-sorted JSON line (for ``.jsonl`` files), newline included."""
    return orjson.dumps(obj, option=_SORTED) + b"\n"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: Any, *, max_len: int = 120) -> str:
    """A file-name-safe form of ``name`` (letters, digits, ``._-``).

    Safe names are kept as they are; others are cleaned and get a short hash suffix so
    that distinct inputs never collapse onto one file name.
    """
    text = str(name) if name is not None else ""
    if text and len(text) <= max_len and not _UNSAFE.search(text) and text[0] not in "._" and text[-1] != ".":
        return text
    out = _UNSAFE.sub("_", text).strip("._")[: max_len - 9] or "_"
    return f"{out}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------
# Reading input
# ---------------------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    """Parse a JSON file; :class:`ParseError` names the file and the position of a syntax error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=str(path)) from exc
    doc, issues = load_json(data, source=str(path))
    if issues:
        raise ParseError(issues[0].message, path=str(path))
    return doc


_CACHE: dict[tuple[str, int, int], Any] = {}
_CACHE_SIZE = 4
SNIFF_MAX_BYTES = 64 * 1024 * 1024


def load_json_cached(path: Path) -> Any:
    """Like :func:`read_json`, but the last few files parsed are kept, so that sniffing and then
    converting (or several adapters sniffing in turn) parse a file once.

    The returned value is shared: callers must not mutate it (copy first).
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=str(path)) from exc
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    doc = read_json(path)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = doc
    return doc


def sniff_json(path: Path, *, max_bytes: int = SNIFF_MAX_BYTES) -> tuple[Any, str | None]:
    """For sniffing: ``(parsed JSON, None)``, or ``(None, why not)`` for a directory, a huge or non-JSON file."""
    if not path.is_file():
        return None, "not a file"
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if size > max_bytes:
        return None, f"larger than {max_bytes // 1048576} MB"
    try:
        return load_json_cached(path), None
    except ParseError as exc:
        return None, f"not a JSON document ({exc.reason})"


def sniff_jsonl_first(path: Path) -> tuple[Any, str | None]:
    """For sniffing JSON Lines: ``(first record, None)`` or ``(None, why not)``."""
    if not path.is_file():
        return None, "not a file"
    try:
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    doc, issues = load_json(line)
                    if issues:
                        return None, f"first line is not JSON ({issues[0].message})"
                    return doc, None
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    return None, "empty file"


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed value)`` for each non-blank line of a JSON Lines file.

    A malformed line raises :class:`ParseError` naming the file and line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=str(path)) from exc
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        doc, issues = load_json(line)
        if issues:
            raise ParseError(f"line {lineno}: {issues[0].message}", path=str(path))
        yield lineno, doc


def iter_records(path: Path) -> Iterator[tuple[int | None, Any]]:
    """The records of a ``.json`` (one record, index None) or ``.jsonl``/``.ndjson`` file (line numbers)."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from iter_jsonl(path)
    else:
        yield None, load_json_cached(path)


def read_bytes_head(path: Path, n: int = 65536) -> bytes:
    """The first ``n`` bytes of a file (b"" when unreadable): enough for cheap sniffing."""
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def iso_timestamp(value: Any) -> str | None:
    """An ISO 8601 UTC timestamp (``...Z``) from epoch seconds or ms, a datetime, or an ISO string.

    Naive datetimes and strings without an offset are taken as UTC. Numbers above 1e11
    are read as milliseconds. Returns None for None or anything unparseable.
    """
    if value is None or isinstance(value, bool):
        return None
    dt: datetime | None = None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        secs = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            dt = datetime.fromtimestamp(secs, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        try:
            dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        except ValueError:
            try:
                return iso_timestamp(float(s))
            except ValueError:
                return None
    if dt is None:
        return None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.isoformat().replace("+00:00", "Z")


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Tool-call arguments as an object, plus a warning when they had to be patched.

    JSON strings are parsed; an unparseable string or a non-object value is kept under
    ``{"_raw": ...}`` (ATIF requires an object) and the warning says why.
    """
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, dict):
        return dict(raw), None
    if isinstance(raw, (str, bytes)):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            return {"_raw": text}, f"arguments are not valid JSON ({exc.msg}); kept under _raw"
        if isinstance(parsed, dict):
            return parsed, None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return {"_raw": text}, f"arguments are JSON {type(parsed).__name__}, not an object; kept under _raw"
    return {"_raw": raw}, f"arguments are {type(raw).__name__}, not an object; kept under _raw"


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty dict (for chained ``.get`` on untrusted input)."""
    return value if isinstance(value, dict) else {}


def text_of(content: Any) -> str:
    """Plain text of a message content: a string, or the text of its text-like blocks joined by newlines.

    Understands OpenAI (``text``, ``input_text``, ``output_text``), Anthropic (``text``) and
    LangChain block shapes; other blocks are skipped.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        return text_of(content.get("content"))
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") in (
                None, "text", "input_text", "output_text", "refusal",
            ):
                t = block.get("text", block.get("refusal"))
                if isinstance(t, str):
                    parts.append(t)
        return "\n".join(parts)
    return str(content)


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


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _metrics(m: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not m:
        return None
    out = _clean(dict(m))
    return out or None


# ---------------------------------------------------------------------------------------------
# Building trajectories
# ---------------------------------------------------------------------------------------------


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
        self.agent: dict[str, Any] = _clean(
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

    def __len__(self) -> int:
        return len(self.steps)

    def _add(self, step: dict[str, Any]) -> dict[str, Any]:
        step["step_id"] = len(self.steps) + 1
        self.steps.append(step)
        return step

    def system(self, message: Any, *, timestamp: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append a system step."""
        return self._add(_clean({"source": "system", "message": _message(message),
                                 "timestamp": iso_timestamp(timestamp), "extra": extra or None}))

    def user(self, message: Any, *, timestamp: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append a user step."""
        return self._add(_clean({"source": "user", "message": _message(message),
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
            _clean(
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
            fm = _clean(dict(final_metrics))
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


def source_names(path: Path, record: Any = None, *, index: int | None = None) -> tuple[str, str]:
    """Default ``(task name, trial key)`` for a conversation read from ``path``.

    The task is the record's ``task_name`` / ``task`` (top level or under ``metadata``), else the
    name of the folder holding the file. The key is the record's ``id`` / ``trial_id`` /
    ``session_id`` / ``conversation_id``, else the file stem, suffixed with ``-<index>`` for
    the n-th record of a multi-record file.
    """
    task: Any = None
    key: Any = None
    if isinstance(record, dict):
        meta = obj(record.get("metadata"))
        for src in (record, meta):
            task = task or src.get("task_name") or src.get("task")
            key = key or next((src.get(k) for k in ("trial_id", "id", "session_id", "conversation_id")
                               if isinstance(src.get(k), (str, int)) and not isinstance(src.get(k), bool)), None)
    if not isinstance(task, str) or not task:
        task = path.absolute().parent.name or "default"
    if key is None:
        key = path.stem or path.name
        if index is not None:
            key = f"{key}-{index}"
    return task, str(key)


# ---------------------------------------------------------------------------------------------
# Trials
# ---------------------------------------------------------------------------------------------


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
    ids = _clean(dict(source_ids or {}))
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


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from ``start`` to ``end`` (any form ``iso_timestamp`` reads); None when unknown or negative."""
    a, b = iso_timestamp(start), iso_timestamp(end)
    if a is None or b is None:
        return None
    secs = (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
    return round(secs, 6) if secs >= 0 else None


def message_list(record: Any) -> list[Any] | None:
    """The message list of a chat log record: a bare list, ``{"messages": [...]}`` or ``{"request": {"messages": [...]}}``."""
    if isinstance(record, list):
        return record
    if isinstance(record, dict):
        if isinstance(record.get("messages"), list):
            return record["messages"]
        req = record.get("request")
        if isinstance(req, dict) and isinstance(req.get("messages"), list):
            return req["messages"]
    return None
