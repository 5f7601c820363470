"""Reading runner output as JSON and writing ATIF files: the byte-level I/O every adapter shares.

Input is read with the schema layer's size limit and JSON reading policy
(:mod:`atif.schema.jsonio`); its warnings (duplicate keys) wait in :func:`drain_warnings`
until the conversion pipeline collects them. Output is canonical (sorted keys, UTF-8), so
that re-runs give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.errors import ParseError
from atif.schema.identity import canonical_json
from atif.schema.issues import Issue
from atif.schema.jsonio import load_json, max_file_bytes, read_file, too_large

__all__ = [
    "drain_warnings",
    "dump_json",
    "dump_line",
    "iter_jsonl",
    "iter_jsonl_lenient",
    "iter_records",
    "load_json_cached",
    "parse",
    "read_bytes",
    "read_error",
    "read_json",
    "sniff_json",
    "sniff_json_or_jsonl",
    "sniff_jsonl_first",
]



def dump_json(obj: Any, *, indent: bool = True) -> bytes:
    """Canonical JSON bytes (:func:`~atif.schema.identity.canonical_json`), two-space indent or compact,
    with a trailing newline. The same object always gives the same bytes, which makes re-runs byte-identical.
    """
    return canonical_json(obj, indent=indent) + b"\n"


def dump_line(obj: Any) -> bytes:
    """One compact, key-sorted JSON line (for ``.jsonl`` files), newline included."""
    return dump_json(obj, indent=False)


def read_error(issue: Issue) -> str:
    """The one-line reason for an input that cannot be read or parsed (same code and message as validate)."""
    if issue.code in ("file.not-found", "file.unreadable"):
        return f"cannot read: {issue.message}"
    return f"[{issue.code}] {issue.message}"


def read_bytes(path: Path) -> bytes:
    """The bytes of an input file, within the size limit; :class:`ParseError` names the file otherwise."""
    data, issues = read_file(path)
    if data is None:
        raise ParseError(read_error(issues[0]), path=str(path))
    return data


def parse(data: bytes, path: Path, where: str = "") -> Any:
    """Parse JSON bytes read from ``path`` under the schema layer's JSON policy.

    An error raises :class:`ParseError` (``where`` prefixes the reason, e.g. ``line 3: ``);
    warnings (duplicate keys) are kept for :func:`drain_warnings`.
    """
    doc, issues = load_json(data, source=str(path))
    for issue in issues:
        if issue.severity == "error":
            raise ParseError(where + read_error(issue), path=str(path))
        _WARNINGS.append(f"{path}: {where}{issue.path or '/'}: [{issue.code}] {issue.message}")
    return doc


def drain_warnings() -> list[str]:
    """The JSON reading warnings since the last call (each once), and forget them."""
    out = list(dict.fromkeys(_WARNINGS))
    _WARNINGS.clear()
    return out


def read_json(path: Path) -> Any:
    """Parse a JSON file; :class:`ParseError` names the file and the position of a syntax error."""
    return parse(read_bytes(path), path)


_WARNINGS: list[str] = []

_CACHE: dict[tuple[str, int, int], tuple[Any, list[str]]] = {}

_CACHE_SIZE = 4


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
        doc, warnings = _CACHE[key]
        _WARNINGS.extend(warnings)
        return doc
    before = len(_WARNINGS)
    doc = read_json(path)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (doc, _WARNINGS[before:])
    return doc


def sniff_json(path: Path) -> tuple[Any, str | None]:
    """For sniffing: ``(parsed JSON, None)``, or ``(None, why not)`` for a directory, a too large or non-JSON file."""
    if not path.is_file():
        return None, "not a file"
    try:
        return load_json_cached(path), None
    except ParseError as exc:
        return None, f"not a JSON document ({exc.reason})"


def sniff_json_or_jsonl(path: Path) -> tuple[Any, str | None]:
    """For sniffing a ``.json`` document or the first record of a ``.jsonl``/``.ndjson`` file:
    ``(document, None)`` or ``(None, why not)``."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return sniff_jsonl_first(path)
    if suffix == ".json":
        return sniff_json(path)
    return None, "not a .json or .jsonl file"


def sniff_jsonl_first(path: Path) -> tuple[Any, str | None]:
    """For sniffing JSON Lines: ``(first record, None)`` or ``(None, why not)``."""
    if not path.is_file():
        return None, "not a file"
    try:
        if path.stat().st_size > max_file_bytes():
            return None, read_error(too_large(path.stat().st_size, max_file_bytes()))
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    doc, issues = load_json(line)
                    errors = [i for i in issues if i.severity == "error"]
                    if errors:
                        return None, f"first line is not JSON ({errors[0].message})"
                    return doc, None
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    return None, "empty file"


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed value)`` for each non-blank line of a JSON Lines file.

    A malformed line raises :class:`ParseError` naming the file and line.
    """
    data = read_bytes(path)
    for lineno, line in enumerate(data.splitlines(), 1):
        if line.strip():
            yield lineno, parse(line, path, f"line {lineno}: ")


def iter_jsonl_lenient(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Like :func:`iter_jsonl`, but a malformed line is yielded as ``(line, None, reason)`` and
    reading goes on (a session log cut off mid-line keeps its good lines). Reading the file
    at all may still raise :class:`ParseError` (missing, too large)."""
    data = read_bytes(path)
    for lineno, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                yield lineno, parse(line, path, f"line {lineno}: "), None
            except ParseError as exc:
                yield lineno, None, exc.reason


def iter_records(path: Path) -> Iterator[tuple[int | None, Any]]:
    """The records of a ``.json`` (one record, index None) or ``.jsonl``/``.ndjson`` file (line numbers)."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from iter_jsonl(path)
    else:
        yield None, load_json_cached(path)
