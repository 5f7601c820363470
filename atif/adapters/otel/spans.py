"""Reading OpenTelemetry span exports into one flat :class:`Span` shape.

Two serialisations are read, in ``.json`` or ``.jsonl`` files:

* OTLP/JSON (``{"resourceSpans": [{"resource", "scopeSpans": [{"scope", "spans": [...]}]}]}``),
  one request per file or per line (the Collector's file exporter); ids in hex (or base64),
  times in ``startTimeUnixNano``, attributes as typed ``AnyValue`` key/value lists;
* the OpenTelemetry SDK's ``ReadableSpan.to_json()`` (console and file exporters): one span per
  line (or a JSON array of them), ``context.trace_id``, ``parent_id``, ISO ``start_time``,
  attributes as a plain object.

Span attribute values keep their JSON type; ``intValue`` strings become ints.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atif.adapters.values import iso_timestamp, obj

__all__ = ["Span", "is_otlp", "is_sdk_span", "spans_of", "unflatten"]


@dataclass(slots=True)
class Span:
    """One span, whatever file it came from."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: str | None
    """ISO 8601 UTC start time."""
    end: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    """``{"name", "time", "attributes"}`` per span event."""
    resource: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    """Where in the input the span was read (``line 3``, ``resourceSpans[0]...``)."""
    start_ns: int = 0
    """Start time as a sortable number (ns since the epoch; 0 when unknown)."""


def is_otlp(doc: Any) -> bool:
    """True for an OTLP/JSON trace export object."""
    return isinstance(doc, dict) and isinstance(doc.get("resourceSpans"), list)


def is_sdk_span(doc: Any) -> bool:
    """True for one span as the SDK's ``to_json`` writes it."""
    return isinstance(doc, dict) and isinstance(doc.get("context"), dict) and "trace_id" in doc["context"] and "name" in doc


def _hex(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    v = value.removeprefix("0x")
    if all(c in "0123456789abcdefABCDEF" for c in v) and len(v) in (16, 32):
        return v.lower()
    try:
        return base64.b64decode(v, validate=True).hex()
    except (binascii.Error, ValueError):
        return v


def _any_value(v: Any) -> Any:
    v = obj(v)
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "doubleValue" in v:
        return v["doubleValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [_any_value(x) for x in obj(v["arrayValue"]).get("values") or []]
    if "kvlistValue" in v:
        return _kv(obj(v["kvlistValue"]).get("values"))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _kv(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items if isinstance(items, list) else []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _ns_iso(ns: Any) -> tuple[int, str | None]:
    try:
        n = int(ns)
    except (TypeError, ValueError):
        return 0, None
    return n, iso_timestamp(n / 1e9) if n else None


def _iso_ns(iso: Any) -> int:
    ts = iso_timestamp(iso)
    if ts is None:
        return 0
    dt = datetime.fromisoformat(ts)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _otlp_spans(doc: dict[str, Any], where: str) -> list[Span]:
    out: list[Span] = []
    for i, rs in enumerate(doc.get("resourceSpans") or []):
        resource = _kv(obj(obj(rs).get("resource")).get("attributes"))
        for j, ss in enumerate(obj(rs).get("scopeSpans") or obj(rs).get("instrumentationLibrarySpans") or []):
            for k, sp in enumerate(obj(ss).get("spans") or []):
                if not isinstance(sp, dict):
                    continue
                start_ns, start = _ns_iso(sp.get("startTimeUnixNano"))
                _, end = _ns_iso(sp.get("endTimeUnixNano"))
                events = [{"name": e.get("name"), "time": _ns_iso(e.get("timeUnixNano"))[1],
                           "attributes": _kv(e.get("attributes"))} for e in sp.get("events") or [] if isinstance(e, dict)]
                out.append(Span(
                    trace_id=_hex(sp.get("traceId")) or "", span_id=_hex(sp.get("spanId")) or "",
                    parent_id=_hex(sp.get("parentSpanId")), name=str(sp.get("name") or ""), start=start, end=end,
                    attributes=_kv(sp.get("attributes")), events=events, resource=resource,
                    where=f"{where}resourceSpans[{i}].scopeSpans[{j}].spans[{k}]", start_ns=start_ns))
    return out


def _sdk_span(doc: dict[str, Any], where: str) -> Span:
    ctx = obj(doc.get("context"))
    events = [{"name": e.get("name"), "time": iso_timestamp(e.get("timestamp")),
               "attributes": obj(e.get("attributes"))} for e in doc.get("events") or [] if isinstance(e, dict)]
    return Span(
        trace_id=_hex(ctx.get("trace_id")) or "", span_id=_hex(ctx.get("span_id")) or "",
        parent_id=_hex(doc.get("parent_id")), name=str(doc.get("name") or ""),
        start=iso_timestamp(doc.get("start_time")), end=iso_timestamp(doc.get("end_time")),
        attributes=dict(obj(doc.get("attributes"))), events=events,
        resource=dict(obj(obj(doc.get("resource")).get("attributes"))), where=where,
        start_ns=_iso_ns(doc.get("start_time")))


def spans_of(doc: Any, where: str = "") -> list[Span] | None:
    """The spans of one parsed record (an OTLP export, an SDK span or a list of them), or None."""
    if is_otlp(doc):
        return _otlp_spans(doc, where)
    if is_sdk_span(doc):
        return [_sdk_span(doc, where)]
    if isinstance(doc, list) and doc and all(is_sdk_span(x) or is_otlp(x) for x in doc):
        out: list[Span] = []
        for i, x in enumerate(doc):
            out.extend(spans_of(x, f"{where}[{i}] ") or [])
        return out
    return None


def unflatten(attrs: dict[str, Any], prefix: str) -> Any:
    """Indexed flat attributes (``p.0.role``, ``p.0.tool_calls.1.name``) as nested lists and objects."""
    root: dict[str, Any] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix + "."):
            continue
        node = root
        parts = key[len(prefix) + 1:].split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}
