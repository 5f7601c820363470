"""Reading loose values of runner output: timestamps, tool arguments, message text, names.

Runner output is untrusted and varies by version; these helpers take anything and return
a well-typed value (or None), never raising on odd input.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from atif.schema.media import IMAGE_MEDIA_TYPES

__all__ = [
    "image_part",
    "iso_timestamp",
    "message_list",
    "obj",
    "parse_arguments",
    "safe_name",
    "seconds_between",
    "source_names",
    "text_of",
    "without_none",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# Names Windows reserves for devices, with or without an extension ("CON", "nul.json").
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_name(name: Any, *, max_len: int = 120) -> str:
    """A file-name-safe form of ``name`` (letters, digits, ``._-``) that every OS can open.

    Safe names are kept as they are; others (including Windows device names such as ``CON``
    or ``nul``) are cleaned and get a short hash suffix so that distinct inputs never collapse
    onto one file name.
    """
    text = str(name) if name is not None else ""
    if (text and len(text) <= max_len and not _UNSAFE.search(text) and text[0] not in "._" and text[-1] != "."
            and text.split(".", 1)[0].upper() not in _RESERVED):
        return text
    out = _UNSAFE.sub("_", text).strip("._")[: max_len - 9] or "_"
    suffix = "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    stem, dot, rest = out.partition(".")
    if stem.upper() in _RESERVED:  # the suffix must change the part before the first dot
        return f"{stem}{suffix}{dot}{rest}"
    return out + suffix


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


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from ``start`` to ``end`` (any form ``iso_timestamp`` reads); None when unknown or negative."""
    a, b = iso_timestamp(start), iso_timestamp(end)
    if a is None or b is None:
        return None
    secs = (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
    return round(secs, 6) if secs >= 0 else None


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


def source_names(path: Path, record: Any = None, *, index: int | None = None) -> tuple[str, str]:
    """Default ``(task name, trial key)`` for a conversation read from ``path``.

    The task is the record's ``task_name`` / ``task`` (top level or under ``metadata``), else the
    file's stem (never the folder's name: unrelated runs in one folder must not share a task).
    The key is the record's ``id`` / ``trial_id`` /
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
        task = path.name.split(".", 1)[0] or path.stem or "default"
    if key is None:
        key = path.stem or path.name
        if index is not None:
            key = f"{key}-{index}"
    return task, str(key)


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


def without_none(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without its None values (ATIF leaves unknown fields out rather than null)."""
    return {k: v for k, v in d.items() if v is not None}


_IMAGE_EXT = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
              ".webp": "image/webp"}


def image_part(url: Any, media: Any = None) -> dict[str, Any] | None:
    """An ATIF image content part for ``url`` (a data URL, a path or a link), or None.

    The media type is ``media`` when given, else the data URL's, else the file extension's;
    None when it is not an image type ATIF allows.
    """
    if not isinstance(url, str) or not url:
        return None
    if media is None:
        if url.startswith("data:"):
            media = url[5:].split(";", 1)[0].split(",", 1)[0]
        else:
            media = _IMAGE_EXT.get(Path(url.split("?", 1)[0]).suffix.lower())
    if media == "image/jpg":
        media = "image/jpeg"
    if media not in IMAGE_MEDIA_TYPES:
        return None
    return {"type": "image", "source": {"media_type": media, "path": url}}
