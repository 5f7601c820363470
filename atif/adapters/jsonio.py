"""Reading runner output as JSON and writing ATIF files: the byte-level I/O every adapter shares.

Input is parsed with the schema layer's one JSON reading policy
(:func:`atif.schema.validate.load_json`); output is canonical (sorted keys, UTF-8), so that
re-runs give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from atif.errors import ParseError
from atif.schema.validate import load_json

__all__ = [
    "dump_json",
    "dump_line",
    "iter_jsonl",
    "iter_records",
    "load_json_cached",
    "read_json",
    "sniff_json",
    "sniff_jsonl_first",
]

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dump_json(obj: Any, *, indent: bool = True) -> bytes:
    """Canonical JSON bytes: sorted keys, UTF-8, two-space indent (or compact), trailing newline.

    The same object always gives the same bytes, which makes re-runs byte-identical.
    """
    opt = _SORTED | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, option=opt) + b"\n"


def dump_line(obj: Any) -> bytes:
    """One compact, key-sorted JSON line (for ``.jsonl`` files), newline included."""
    return orjson.dumps(obj, option=_SORTED) + b"\n"


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
