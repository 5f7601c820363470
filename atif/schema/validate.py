"""Version-aware, exhaustive validation of ATIF documents.

Two layers, each reporting everything it finds:

1. *Shape*: the pydantic models of :mod:`atif.schema.models` (types, required
   and unknown keys), with Harbor's lax coercion.
2. *Rules*: one Python pass over the parsed document for every cross-field
   rule of the spec, the version gates, and the extra checks Harbor lacks.

Every issue carries a JSON-pointer path, a stable code and a message.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from math import isfinite as _isfinite
from pathlib import Path
from typing import Any, Literal

import orjson
import pydantic_core

from atif.errors import ValidationError
from atif.schema.issues import Issue, escape_pointer
from atif.schema.jsonio import load_json, max_file_bytes, overflow_issue, parse_json, read_file, too_large
from atif.schema.media import AUDIO_MEDIA_TYPES, IMAGE_MEDIA_TYPES, normalize_audio_media_type
from atif.schema.parallel import map_ordered, worker_count
from atif.schema.versions import LATEST, VERSIONS

FINITE_SHAPE_FILE = Path(__file__).with_name("finite_shape.json")

__all__ = [
    "CODES", "EXTRA_CHECKS", "Issue", "ValidationReport", "load_json", "load_trajectory", "validate", "validate_files",
]

Mode = Literal["strict", "lenient"]

# Stable issue codes (besides ``schema.<pydantic error type>`` for shape errors).
CODES: dict[str, str] = {
    "file.not-found": "the path does not exist",
    "file.too-large": "the file is larger than the size limit",
    "file.unreadable": "the file cannot be read",
    "json.empty": "the file is empty",
    "json.encoding": "the bytes are not UTF-8",
    "json.truncated": "the JSON ends early",
    "json.syntax": "the bytes are not JSON",
    "json.not-object": "the JSON is not an object",
    "json.non-finite": "NaN or Infinity, which JSON does not have",
    "json.surrogate": "a \\u escape of a lone surrogate, which is not Unicode text",
    "json.duplicate-key": "a key appears twice in one object (the last value is kept)",
    "version.unknown": "schema_version is not ATIF-v1.0 .. ATIF-v1.8",
    "version.missing": "no schema_version; ATIF-v1.8 assumed",
    "version.too-new": "a field or feature newer than the declared schema_version",
    "version.required": "a field the declared version requires is missing",
    "step.id-sequence": "step_id is not sequential from 1",
    "step.agent-only-field": "an agent-only field on a system or user step",
    "step.llm-call-count-zero": "metrics or reasoning_content on an agent step with llm_call_count 0",
    "timestamp.invalid": "a timestamp is not ISO 8601",
    "observation.unknown-call-id": "source_call_id names no tool call of the same step",
    "subagent.missing-id": "an embedded subagent trajectory has no trajectory_id",
    "subagent.duplicate-id": "two embedded subagent trajectories share a trajectory_id",
    "ref.unresolvable": "a subagent ref has neither trajectory_id nor trajectory_path",
    "content.text-missing": "a text part without text",
    "content.source-not-allowed": "a text part with a source",
    "content.source-missing": "a media part without a source",
    "content.text-not-allowed": "a media part with text",
    "content.source-mismatch": "a media source of the wrong kind or media type",
    "toolcall.arguments-json-string": "arguments is a JSON-encoded string, not an object",
    # Extra checks (Harbor lacks them): see EXTRA_CHECKS.
    "toolcall.duplicate-id": "two tool calls of one trajectory share a tool_call_id",
    "metrics.negative": "a negative token count or cost",
    "final-metrics.mismatch": "final_metrics disagree with the sum of the step metrics",
    "timestamp.backwards": "a step is earlier than the step before it",
    "ref.unresolved-path": "a referenced trajectory file does not exist",
    "ref.unknown-trajectory-id": "a ref names no embedded subagent trajectory",
}

# Checks atif makes beyond Harbor's reference model, with their severity.
EXTRA_CHECKS: dict[str, str] = {
    "toolcall.duplicate-id": "error",
    "metrics.negative": "error",
    "final-metrics.mismatch": "warning",
    "timestamp.backwards": "warning",
    "ref.unresolved-path": "warning",
    "ref.unknown-trajectory-id": "warning",
    "version.missing": "warning",
}

_VIDX = {v: i for i, v in enumerate(VERSIONS)}
_METRIC_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")
_NUMBER_TYPES = (int, float)  # exact types: bool is not a count
_LATEST_IDX = len(VERSIONS) - 1
AGENT_ONLY_FIELDS = ("model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics")
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "None"}


@dataclass(slots=True)
class ValidationReport:
    """The outcome of validating one document."""

    source: str | None
    """File path, ``<stdin>``, or None for an in-memory object."""
    version: str | None = None
    """The version the document was checked against."""
    issues: list[Issue] = field(default_factory=list)
    """Every issue found, errors and warnings."""
    document: Any = None
    """The parsed JSON document (None when it could not be parsed)."""

    @property
    def errors(self) -> list[Issue]:
        """Issues of severity ``error``."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Issues of severity ``warning``."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def valid(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(i.severity == "error" for i in self.issues)

    def raise_for_errors(self) -> None:
        """Raise :class:`atif.errors.ValidationError` listing the errors, if any."""
        errs = self.errors
        if errs:
            first = errs[0]
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise ValidationError(f"{first.path or '/'}: [{first.code}] {first.message}{more}", errs, path=self.source)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "version": self.version,
            "valid": self.valid,
            "issues": [i.to_dict() for i in self.issues],
        }


def _ptr(base: str, *tokens: object) -> str:
    return base + "".join("/" + escape_pointer(t) for t in tokens)


def validate(
    obj: Any,
    version: str | None = None,
    mode: Mode = "strict",
    *,
    max_bytes: int | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> ValidationReport:
    """Validate one ATIF document and report every issue at once.

    ``obj`` is a path (``str`` or ``Path``), raw JSON ``bytes``, a parsed ``dict``
    or a :class:`Trajectory`. ``version`` checks against that version instead of
    the declared ``schema_version``. In ``strict`` mode a field newer than the
    version is an error; in ``lenient`` mode a warning. File references
    (``continued_trajectory_ref``, ``trajectory_path``) are resolved against the
    file's folder (or ``base_dir``) and a missing one is a warning.
    """
    limit = max_file_bytes() if max_bytes is None else max_bytes
    source: str | None = None
    issues: list[Issue] = []
    raw: bytes | bytearray | memoryview | None = None
    if isinstance(obj, (str, os.PathLike)):
        source = str(obj)
        data, issues = read_file(obj, limit)
        if data is None:
            return ValidationReport(source=source, issues=issues)
        obj = data
    if isinstance(obj, (bytes, bytearray, memoryview)):
        if len(obj) > limit:
            return ValidationReport(source=source, issues=[too_large(len(obj), limit)])
        raw = obj
        doc, issues = parse_json(obj, source=source)
    elif _is_model(obj):
        doc = obj.model_dump(mode="json", exclude_none=True)
    else:
        doc = obj
    if doc is None and issues:
        return ValidationReport(source=source, issues=issues)
    base = Path(base_dir) if base_dir else None
    # The fast path: one compiled shape check that also sees every float finite, then the rules,
    # which check the long number lists that check leaves to them. When both pass, the document
    # has no shape issue and no number literal that overflowed, so the JSON reading policy's own
    # search for such literals is not needed.
    if type(doc) is dict:
        coerced = _finite_shape(doc)
        if coerced is not None:
            checker = _Checker(mode=mode, base_dir=base, source=source)
            checked = checker.run(doc, version, coerced)
            if not checker.unproven:
                report = ValidationReport(source=source, version=checked, issues=issues, document=doc)
                if checker.issues:
                    report.issues.extend(sorted(checker.issues, key=_document_order))
                return report
    if raw is not None:
        overflow = overflow_issue(doc, raw)
        if overflow is not None:
            return ValidationReport(source=source, issues=[overflow])
    report = ValidationReport(source=source, issues=issues, document=doc)
    if not report.valid:
        return report
    if not isinstance(doc, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
            type(doc), "null" if doc is None else type(doc).__name__
        )
        report.issues.append(Issue("", "json.not-object", f"expected an ATIF trajectory object, got {kind}"))
        return report
    checker = _Checker(mode=mode, base_dir=base, source=source)
    report.version = checker.run(doc, version)
    if checker.issues:
        report.issues.extend(sorted(checker.issues, key=_document_order))
    return report


def _validate_lean(args: tuple[str, str | None, Mode, int]) -> ValidationReport:
    """One file's report without its document: what a batch keeps or sends between processes."""
    report = validate(args[0], args[1], args[2], max_bytes=args[3])
    report.document = None
    return report


def validate_files(
    paths: Sequence[str | os.PathLike[str]],
    version: str | None = None,
    mode: Mode = "strict",
    *,
    workers: int | None = None,
    keep_documents: bool = False,
) -> Iterator[ValidationReport]:
    """Validate many files, yielding each one's report in the order of ``paths``.

    The same reports as :func:`validate` per file, made without keeping any: memory stays flat
    however many files there are. ``workers`` processes share the files (see
    :func:`atif.schema.parallel.worker_count`: None or 0 picks one per usable core when there
    are enough files). Reports come without their ``document`` unless ``keep_documents``,
    which validates in this process.
    """
    n = 1 if keep_documents else worker_count(len(paths), workers)
    # Parsed documents die by reference counting; the cycle collector would only walk every
    # batch's trees again (a third of the time). It is switched back on however the batch ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if keep_documents:
            for p in paths:
                yield validate(p, version, mode)
            return
        limit = max_file_bytes()
        args = [(str(p), version, mode, limit) for p in paths]
        # Chunks of up to 128 files: each costs the parent a round trip through the pool (a third
        # of its time at 32), and at most 4 per worker are in flight, so memory stays bounded.
        chunk = max(1, min(128, len(args) // (n * 8) or 1))
        yield from map_ordered(_validate_lean, args, n, chunk_size=chunk)
    finally:
        if collecting:
            gc.enable()


# Shape validation runs on TypedDict twins of the models (:mod:`atif.schema.shape`). The fast
# path's check (the *finite* twins: every float finite, the long number lists left to the rule
# pass) is compiled from the schema stored with the package, ``finite_shape.json``, so that
# validating a valid document imports neither the models nor pydantic's schema generation; it
# is rebuilt from the models when the installed pydantic-core is not the one it was made with.
_validate_finite: Callable[[Any], Any] | None = None


def _finite_validator() -> Callable[[Any], Any]:
    global _validate_finite
    if _validate_finite is None:
        data = orjson.loads(FINITE_SHAPE_FILE.read_bytes()) if FINITE_SHAPE_FILE.is_file() else {}
        validator = None
        if data.get("pydantic_core") == pydantic_core.__version__:
            try:
                validator = pydantic_core.SchemaValidator(data["schema"], {}).validate_python
            except pydantic_core.SchemaError:
                validator = None
        if validator is None:
            from atif.schema.shape import finite_shape

            validator = finite_shape().validator.validate_python
        _validate_finite = validator
    return _validate_finite


def _full_shape() -> Any:
    from atif.schema.shape import full_shape

    return full_shape()


def _is_model(obj: Any) -> bool:
    """Whether ``obj`` is a pydantic model (a :class:`Trajectory`); pydantic is not imported to ask."""
    pyd = sys.modules.get("pydantic")
    return pyd is not None and isinstance(obj, pyd.BaseModel)


def _finite_shape(doc: dict[str, Any]) -> Any:
    """The coerced document when it has no shape issue and every float in it is finite, else None."""
    try:
        return (_validate_finite or _finite_validator())(doc)
    except pydantic_core.ValidationError:
        return None


def load_trajectory(data: bytes | bytearray | memoryview, *, source: str | None = None) -> tuple[Any, list[Issue]]:
    """:func:`~atif.schema.jsonio.load_json` for bytes meant to be an ATIF trajectory: the same
    document, warnings and errors.

    The JSON reading policy's last step searches the bytes for a number literal that parsed to
    infinity, a scan of every byte that costs about as much as the parse. A trajectory that
    passes the validator's compiled finite shape check, its number lists summed finite, has no
    infinite float, so that scan could only find nothing: it runs only for the others.
    """
    doc, issues = parse_json(data, source=source)
    if doc is None or (type(doc) is dict and _all_finite(doc)):
        return doc, issues
    overflow = overflow_issue(doc, data)
    return (None, [overflow]) if overflow else (doc, issues)


def _all_finite(doc: dict[str, Any]) -> bool:
    """Whether every float of a parsed trajectory is proven finite: the finite shape check, then
    the number lists it takes as they are (every step's, the embedded trajectories' too)."""
    return _finite_shape(doc) is not None and _lists_finite(doc)


def _lists_finite(doc: dict[str, Any]) -> bool:
    """The number lists of a trajectory the finite shape check accepted, proven like the rule pass proves them."""
    for step in doc["steps"]:
        metrics = step.get("metrics")
        if metrics is not None and (type(metrics) is not dict or not _number_lists_proven(metrics)):
            return False
    subs = doc.get("subagent_trajectories")
    if subs is not None:
        for sub in subs:
            if type(sub) is not dict or not _lists_finite(sub):
                return False
    return True


def _document_order(issue: Issue) -> tuple[tuple[int, int | str], ...]:
    """Sort key: pointers in document order (``/steps/2`` before ``/steps/10``)."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in issue.path.split("/")[1:])


def _shape_issues(doc: dict[str, Any]) -> tuple[Any, list[Issue]]:
    """Shape-check a parsed document: ``(coerced document or None, issues)``."""
    try:
        return _full_shape().validate_python(doc), []
    except pydantic_core.ValidationError as exc:
        return None, _convert_pydantic(exc.errors(include_url=False), doc)


def _tp(base: tuple[Any, ...], *tokens: Any) -> tuple[Any, ...]:
    """A JSON pointer as a tuple of tokens; turned into a string only when an issue is reported."""
    return base + tokens


def _convert_pydantic(errors: Iterable[Any], doc: Any) -> list[Issue]:
    found: dict[str, list[tuple[bool, Any]]] = {}
    for err in errors:
        tokens: list[Any] = []
        union_branch = False
        for part in err["loc"]:
            if isinstance(part, str) and (
                part in _TYPE_TAGS or "[" in part or "(" in part or part[:1].isupper() or "-" in part
            ):
                union_branch = True
                continue
            tokens.append(part)
        found.setdefault(_ptr("", *tokens), []).append((union_branch, err))
    issues: list[Issue] = []
    pointers = sorted(found)
    for pointer in pointers:
        errs = found[pointer]
        deeper = any(p.startswith(pointer + "/") for p in pointers)
        branch_errs = [e for u, e in errs if u]
        plain_errs = [e for u, e in errs if not u]
        if branch_errs and not plain_errs and deeper:
            continue  # a deeper error of the matching union branch says more
        for err in plain_errs:
            issues.append(_issue_from_pydantic(pointer, err))
        if branch_errs:
            msgs = sorted({e["msg"] for e in branch_errs})
            issues.append(Issue(pointer, "schema." + branch_errs[0]["type"], " or ".join(msgs)))
    return issues


def _issue_from_pydantic(pointer: str, err: Any) -> Issue:
    etype = err["type"]
    if etype == "dict_type" and pointer.endswith("/arguments") and isinstance(err.get("input"), str):
        try:
            parsed = orjson.loads(err["input"])
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return Issue(
                pointer,
                "toolcall.arguments-json-string",
                "arguments is a JSON-encoded string; ATIF wants the object itself "
                "(hint: `atif validate --repair` parses it)",
            )
    if etype == "extra_forbidden":
        return Issue(pointer, "schema.extra_forbidden", "unknown key; custom data belongs in an `extra` object")
    return Issue(pointer, "schema." + etype, err["msg"])


def as_int(v: Any) -> int | None:
    """An integer from an int, a whole float or a numeric string, as pydantic's lax mode reads it; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


_fromisoformat = datetime.fromisoformat
_NO_CALLS: frozenset[str] = frozenset()


def _number_lists_proven(metrics: dict[str, Any]) -> bool:
    """Whether the number lists of one step's metrics are what the full shape check accepts as they are.

    A sum is a loop in C: of ints (or bools, which lax validation takes for 0 and 1) it is an
    int; a float among token ids, a string, a null or a container makes it a float or a
    ``TypeError``. Logprobs must sum to a finite number (a too-large sum of finite ones only sends
    the document down the full path).
    """
    try:
        for key in ("prompt_token_ids", "completion_token_ids"):
            ids = metrics.get(key)
            if ids is not None and (type(ids) is not list or type(sum(ids)) is not int):
                return False
        logprobs = metrics.get("logprobs")
        return logprobs is None or (type(logprobs) is list and _isfinite(sum(logprobs)))
    except TypeError:
        return False


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


class _Checker:
    """One pass over a parsed document for every cross-field rule."""

    def __init__(self, *, mode: Mode, base_dir: Path | None, source: str | None = None) -> None:
        self.mode = mode
        self.base_dir = base_dir
        self.source = source  # a file's references resolve against its folder (made only when needed)
        self.issues: list[Issue] = []
        self.fast = False
        """Whether the rules read the fast shape check's output, whose number lists are unchecked."""
        self.unproven = False
        """Whether such a list may hold what the full shape check refuses or coerces, or an infinity."""

    def add(self, path: tuple[Any, ...], code: str, message: str,
            severity: Literal["error", "warning"] = "error") -> None:
        self.issues.append(Issue(_ptr("", *path), code, message, severity))

    def run(self, doc: dict[str, Any], version: str | None, coerced: Any = None) -> str:
        """The rules over ``doc``; ``coerced`` is its shape-checked form when the fast path made it."""
        self.fast = coerced is not None
        if coerced is None:
            coerced, issues = _shape_issues(doc)
            self.issues.extend(issues)
        if coerced is not None:
            doc = coerced  # rules read the same coerced values Harbor's validators see
        return self.trajectory(doc, (), version)

    def gate(self, path: tuple[Any, ...], added: str, what: str) -> None:
        if self.vidx >= _VIDX[added]:
            return
        self.add(
            path,
            "version.too-new",
            f"{what} was added in {added}, but the document is checked as {self.version}",
            "error" if self.mode == "strict" else "warning",
        )

    def trajectory(self, doc: dict[str, Any], base: tuple[Any, ...], version: str | None) -> str:
        declared = doc.get("schema_version")
        if version is not None:
            checked = version
        elif "schema_version" not in doc:
            checked = LATEST
            self.add(_tp(base, "schema_version"), "version.missing", f"no schema_version; checked as {LATEST}",
                     "warning")
        else:
            checked = declared if isinstance(declared, str) else LATEST
        if _VIDX.get(checked, -1) < 0:
            if isinstance(checked, str):
                self.add(
                    _tp(base, "schema_version") if version is None else base,
                    "version.unknown",
                    f"unknown schema_version {checked!r}; expected one of {', '.join(VERSIONS)}",
                )
            checked = LATEST
        outer = getattr(self, "version", None), getattr(self, "vidx", None)
        self.version, self.vidx = checked, _VIDX[checked]

        if doc.get("extra") is not None:
            self.gate(_tp(base, "extra"), "ATIF-v1.1", "root `extra`")
        if doc.get("trajectory_id") is not None:
            self.gate(_tp(base, "trajectory_id"), "ATIF-v1.7", "`trajectory_id`")
        if self.vidx < _VIDX["ATIF-v1.7"] and doc.get("session_id") is None and not base:
            self.add(
                _tp(base, "session_id"),
                "version.required",
                f"session_id is required before ATIF-v1.7 (document is {checked})",
                "error" if self.mode == "strict" else "warning",
            )
        agent = doc.get("agent")
        if isinstance(agent, dict) and agent.get("tool_definitions") is not None:
            self.gate(_tp(base, "agent", "tool_definitions"), "ATIF-v1.5", "`agent.tool_definitions`")

        sums: dict[str, float] = {}
        seen_calls: dict[str, tuple[Any, ...]] = {}
        steps = doc.get("steps")
        embedded_ids = self.subagents(doc, base)
        if isinstance(steps, list):
            prev_time: datetime | None = None
            for i, step in enumerate(steps):
                if isinstance(step, dict):
                    prev_time = self.step(step, base + ("steps", i), i, seen_calls, sums, prev_time,
                                          embedded_ids)
        self.final_metrics(doc.get("final_metrics"), _tp(base, "final_metrics"), sums)
        ref = doc.get("continued_trajectory_ref")
        if isinstance(ref, str):
            self.file_ref(_tp(base, "continued_trajectory_ref"), ref)
        if outer[0] is not None:
            self.version, self.vidx = outer  # type: ignore[assignment]
        return checked

    def subagents(self, doc: dict[str, Any], base: tuple[Any, ...]) -> set[str]:
        subs = doc.get("subagent_trajectories")
        ids: set[str] = set()
        if subs is None:
            return ids
        self.gate(_tp(base, "subagent_trajectories"), "ATIF-v1.7", "`subagent_trajectories`")
        if not isinstance(subs, list):
            return ids
        for i, sub in enumerate(subs):
            p = _tp(base, "subagent_trajectories", i)
            if not isinstance(sub, dict):
                continue
            tid = sub.get("trajectory_id")
            if tid is None:
                self.add(_tp(p, "trajectory_id"), "subagent.missing-id",
                         "an embedded subagent trajectory needs a trajectory_id")
            elif isinstance(tid, str):
                if tid in ids:
                    self.add(_tp(p, "trajectory_id"), "subagent.duplicate-id",
                             f"trajectory_id {tid!r} is used by an earlier embedded subagent")
                ids.add(tid)
            self.trajectory(sub, p, None)
        return ids

    def step(
        self,
        step: dict[str, Any],
        p: tuple[Any, ...],
        i: int,
        seen_calls: dict[str, tuple[Any, ...]],
        sums: dict[str, float],
        prev_time: datetime | None,
        embedded_ids: set[str],
    ) -> datetime | None:
        # The common case (a valid, coerced step of the latest version) takes the fewest branches.
        get = step.get
        sid = get("step_id")
        if sid != i + 1:
            sid = as_int(sid)
            if sid is not None and sid >= 1 and sid != i + 1:
                self.add(p + ("step_id",), "step.id-sequence",
                         f"expected step_id {i + 1} (sequential from 1), got {sid}")
        source = get("source")
        if source != "agent" and source in ("system", "user"):
            for f in AGENT_ONLY_FIELDS:
                if get(f) is not None:
                    self.add(p + (f,), "step.agent-only-field",
                             f"`{f}` is only allowed on agent steps, but source is {source!r}")
        old = self.vidx < _LATEST_IDX
        if old:
            if source == "system" and get("observation") is not None:
                self.gate(p + ("observation",), "ATIF-v1.2", "an observation on a system step")
            if get("is_copied_context") is not None:
                self.gate(p + ("is_copied_context",), "ATIF-v1.5", "`is_copied_context`")
        llm_calls = get("llm_call_count")
        if llm_calls is not None:
            if old:
                self.gate(p + ("llm_call_count",), "ATIF-v1.7", "`llm_call_count`")
            if source == "agent" and as_int(llm_calls) == 0 and not isinstance(llm_calls, bool):
                for f in ("metrics", "reasoning_content"):
                    if get(f) is not None:
                        self.add(p + (f,), "step.llm-call-count-zero",
                                 f"`{f}` must be absent when llm_call_count is 0 (a deterministic dispatch)")
        ts = get("timestamp")
        if type(ts) is str or isinstance(ts, str):
            try:
                t: datetime | None = _fromisoformat(ts.replace("Z", "+00:00"))  # exactly Harbor's check
            except ValueError:
                t = None
            if t is None:
                self.add(p + ("timestamp",), "timestamp.invalid", f"{ts!r} is not an ISO 8601 timestamp")
            else:
                if prev_time is not None and (t.tzinfo is None) == (prev_time.tzinfo is None) and t < prev_time:
                    self.add(p + ("timestamp",), "timestamp.backwards",
                             f"{ts} is earlier than the previous step", "warning")
                prev_time = t
        message = get("message")
        if type(message) is not str and isinstance(message, list):
            self.parts(message, p + ("message",))
        calls = get("tool_calls")
        call_ids: AbstractSet[str] = _NO_CALLS
        if calls and isinstance(calls, list):
            ids: set[str] = set()
            call_ids = ids
            for j, call in enumerate(calls):
                if not isinstance(call, dict):
                    continue
                cid = call.get("tool_call_id")
                if isinstance(cid, str):
                    if cid in seen_calls:
                        self.add(p + ("tool_calls", j, "tool_call_id"), "toolcall.duplicate-id",
                                 f"tool_call_id {cid!r} is already used at {_ptr('', *seen_calls[cid])}")
                    else:
                        seen_calls[cid] = p + ("tool_calls", j)
                    ids.add(cid)
                if old and call.get("extra") is not None:
                    self.gate(p + ("tool_calls", j, "extra"), "ATIF-v1.7", "tool-call `extra`")
        obs = get("observation")
        if obs is not None and isinstance(obs, dict):
            results = obs.get("results")
            if isinstance(results, list):
                for j, res in enumerate(results):
                    if isinstance(res, dict):
                        self.result(res, p + ("observation", "results", j), call_ids, get("step_id"), embedded_ids)
        metrics = get("metrics")
        if metrics is not None and isinstance(metrics, dict):
            mget = metrics.get
            for f in _METRIC_FIELDS:
                v = mget(f)
                if v is not None and type(v) in _NUMBER_TYPES:
                    if v < 0:
                        self.add(p + ("metrics", f), "metrics.negative", f"`{f}` is negative ({v})")
                    sums[f] = sums.get(f, 0.0) + v
            if self.fast and not self.unproven:
                self.unproven = not _number_lists_proven(metrics)
            if old:
                if mget("completion_token_ids") is not None:
                    self.gate(p + ("metrics", "completion_token_ids"), "ATIF-v1.3", "`completion_token_ids`")
                if mget("prompt_token_ids") is not None:
                    self.gate(p + ("metrics", "prompt_token_ids"), "ATIF-v1.4", "`prompt_token_ids`")
        return prev_time

    def result(
        self, res: dict[str, Any], rp: tuple[Any, ...], call_ids: AbstractSet[str], step_id: Any,
        embedded_ids: set[str],
    ) -> None:
        scid = res.get("source_call_id")
        if isinstance(scid, str) and scid not in call_ids:
            self.add(_tp(rp, "source_call_id"), "observation.unknown-call-id",
                     f"source_call_id {scid!r} names no tool call of step {step_id}")
        content = res.get("content")
        if isinstance(content, list):
            self.parts(content, _tp(rp, "content"))
        if res.get("extra") is not None:
            self.gate(_tp(rp, "extra"), "ATIF-v1.7", "observation-result `extra`")
        refs = res.get("subagent_trajectory_ref")
        if not isinstance(refs, list):
            return
        for k, ref in enumerate(refs):
            if not isinstance(ref, dict):
                continue
            fp = _tp(rp, "subagent_trajectory_ref", k)
            tid, path = ref.get("trajectory_id"), ref.get("trajectory_path")
            if tid is not None:
                self.gate(_tp(fp, "trajectory_id"), "ATIF-v1.7", "ref `trajectory_id`")
            if self.vidx >= _VIDX["ATIF-v1.7"]:
                if tid is None and path is None:
                    self.add(fp, "ref.unresolvable",
                             "a subagent ref needs trajectory_id (embedded) or trajectory_path (file); "
                             "session_id alone does not resolve")
            elif ref.get("session_id") is None:
                self.add(_tp(fp, "session_id"), "version.required",
                         f"a subagent ref needs session_id before ATIF-v1.7 (document is {self.version})",
                         "error" if self.mode == "strict" else "warning")
            if isinstance(tid, str) and path is None and tid not in embedded_ids:
                self.add(_tp(fp, "trajectory_id"), "ref.unknown-trajectory-id",
                         f"no embedded subagent trajectory has trajectory_id {tid!r}", "warning")
            if isinstance(path, str):
                self.file_ref(_tp(fp, "trajectory_path"), path)

    def parts(self, parts: list[Any], base: tuple[Any, ...]) -> None:
        self.gate(base, "ATIF-v1.6", "content parts (a list instead of a string)")
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                continue
            pp = _tp(base, j)
            kind, text, src = part.get("type"), part.get("text"), part.get("source")
            if kind == "text":
                if text is None:
                    self.add(_tp(pp, "text"), "content.text-missing", "a text part needs `text`")
                if src is not None:
                    self.add(_tp(pp, "source"), "content.source-not-allowed", "a text part cannot have a `source`")
            elif kind in ("image", "audio"):
                if kind == "audio":
                    self.gate(_tp(pp, "type"), "ATIF-v1.8", "audio content")
                if src is None:
                    self.add(_tp(pp, "source"), "content.source-missing", f"an {kind} part needs a `source`")
                if text is not None:
                    self.add(_tp(pp, "text"), "content.text-not-allowed", f"an {kind} part cannot have `text`")
                if isinstance(src, dict):
                    mt = src.get("media_type")
                    if kind == "image":
                        ok = mt in IMAGE_MEDIA_TYPES and "duration_sec" not in src
                        want = "an image source (" + ", ".join(IMAGE_MEDIA_TYPES) + ")"
                    else:
                        ok = isinstance(mt, str) and normalize_audio_media_type(mt) in AUDIO_MEDIA_TYPES
                        want = "an audio source (" + ", ".join(AUDIO_MEDIA_TYPES) + ")"
                    if isinstance(mt, str) and not ok:
                        self.add(_tp(pp, "source", "media_type"), "content.source-mismatch",
                                 f"type {kind!r} needs {want}, got media_type {mt!r}")

    def final_metrics(self, fm: Any, fp: tuple[Any, ...], sums: dict[str, float]) -> None:
        if not isinstance(fm, dict):
            return
        for f in ("total_prompt_tokens", "total_completion_tokens", "total_cached_tokens", "total_cost_usd"):
            v = _num(fm.get(f))
            if v is None:
                continue
            if v < 0:
                self.add(_tp(fp, f), "metrics.negative", f"`{f}` is negative ({fm[f]})")
                continue
            step_field = f.removeprefix("total_")
            if step_field == "cost_usd":
                continue  # totals include subagent costs the steps need not carry
            if step_field in sums and abs(sums[step_field] - v) > 0.5:
                self.add(_tp(fp, f), "final-metrics.mismatch",
                         f"`{f}` is {fm[f]} but the steps' {step_field} add up to {sums[step_field]:g}", "warning")

    def file_ref(self, p: tuple[Any, ...], ref: str) -> None:
        if self.base_dir is None and self.source is not None:
            self.base_dir = Path(self.source).parent
        if self.base_dir is None or "://" in ref or not ref:
            return
        target = Path(ref) if os.path.isabs(ref) else self.base_dir / ref
        if not target.exists():
            self.add(p, "ref.unresolved-path", f"{ref!r} does not exist (looked at {target})", "warning")
