"""Reading files as JSON: the one size limit and the one JSON reading policy of every command.

``validate``, ``convert`` (every adapter, sniffing included) and ``upload`` read input through
:func:`read_file` and :func:`load_json`, so the same bytes give the same verdict everywhere:

* **Size**: a file larger than ``ATIF_MAX_FILE_MB`` mebibytes (default 100; :func:`max_file_bytes`)
  is refused unread with the issue ``file.too-large``. Archive members are held to the same limit.
* **NaN and Infinity** (and ``-Infinity``) are not JSON: an error, ``json.non-finite``; so is a
  number literal too large for a 64-bit float (``1e400``, or an integer part of 400 digits
  followed by a fraction), with its JSON pointer.
* **Duplicate keys**: the last value is kept (as every JSON library does) and each duplicate is
  a warning, ``json.duplicate-key``, naming the key and the JSON pointer of its object.
* **Big integers** are kept exact (2**64 + 1 stays an int, never a float).
* **A lone surrogate escape** (``"\\ud800"`` without its pair) is an error, ``json.surrogate``:
  it is not Unicode text, and no UTF-8 output could hold it.
* Invalid UTF-8 bytes (``json.encoding``), a document that ends early (``json.truncated``) and
  other syntax errors (``json.syntax``) are errors with their line, column and byte offset.

A UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import jiter
import orjson

from atif.schema.issues import Issue, escape_pointer

__all__ = [
    "DEFAULT_MAX_FILE_MB", "load_json", "max_file_bytes", "overflow_issue", "parse_json", "read_file", "too_large",
]

DEFAULT_MAX_FILE_MB = 100
_MIB = 1024 * 1024


def max_file_bytes() -> int:
    """The size limit of one input file in bytes: ``ATIF_MAX_FILE_MB`` mebibytes (default 100)."""
    raw = os.environ.get("ATIF_MAX_FILE_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_FILE_MB
    except ValueError:
        mb = DEFAULT_MAX_FILE_MB
    return int(mb * _MIB) if mb > 0 else int(DEFAULT_MAX_FILE_MB * _MIB)


def too_large(size: int | None, limit: int, what: str = "") -> Issue:
    """The ``file.too-large`` issue: one message wherever the limit is hit."""
    amount = f"{size / _MIB:.0f} MiB is" if size is not None else "is"
    subject = f"{what} " if what else ("" if size is not None else "the file ")
    return Issue(
        "",
        "file.too-large",
        f"{subject}{amount} over the {limit / _MIB:.0f} MiB limit (raise it with ATIF_MAX_FILE_MB)",
    )


def read_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> tuple[bytes | None, list[Issue]]:
    """The bytes of one input file, or ``(None, [issue])``: not found, a directory, unreadable, too large.

    The size is checked before anything is read. ``max_bytes`` defaults to :func:`max_file_bytes`.
    One ``open``, one ``fstat`` and a read of exactly the file's size: a validation of many small
    files spends a third less time here than with ``Path.stat`` and a buffered read.
    """
    limit = max_file_bytes() if max_bytes is None else max_bytes
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return _refuse(Path(path), limit)  # the same issue as ever, whatever made open() fail
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None, [Issue("", "file.unreadable", "is a directory, not a file")]
        if st.st_size > limit:
            return None, [too_large(st.st_size, limit)]
        data = os.read(fd, st.st_size + 1)
        if data and (len(data) != st.st_size or not stat.S_ISREG(st.st_mode)):
            # A regular file of the size fstat() gave is read whole by one read(); anything else
            # (it grew or shrank meanwhile, a pipe) is read to its end, still held to the limit.
            data += _read_upto(fd, limit + 1 - len(data))
    except OSError as exc:
        return None, [Issue("", "file.unreadable", exc.strerror or str(exc))]
    finally:
        os.close(fd)
    if len(data) > limit:
        return None, [too_large(None, limit, "the file")]
    return data, []


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_upto(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes from ``fd``: fewer only at the end of the file."""
    data = os.read(fd, n)
    if not data or len(data) >= n:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.read(fd, n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _refuse(path: Path, limit: int) -> tuple[None, list[Issue]]:
    """Why a file that could not be opened is refused: not found, a directory, too large, unreadable."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, [Issue("", "file.not-found", "no such file")]
    except OSError as exc:
        return None, [Issue("", "file.unreadable", exc.strerror or str(exc))]
    if path.is_dir():
        return None, [Issue("", "file.unreadable", "is a directory, not a file")]
    if size > limit:
        return None, [too_large(size, limit)]
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        return None, [Issue("", "file.unreadable", exc.strerror or str(exc))]
    return None, [Issue("", "file.unreadable", "cannot be opened")]


def load_json(data: bytes | bytearray | memoryview, *, source: str | None = None) -> tuple[Any, list[Issue]]:
    """Parse bytes as JSON under the policy above: ``(document, warnings)`` or ``(None, [error])``."""
    doc, issues = parse_json(data, source=source)
    if doc is None:
        return doc, issues
    overflow = overflow_issue(doc, data)
    return (None, [overflow]) if overflow else (doc, issues)


def parse_json(data: bytes | bytearray | memoryview, *, source: str | None = None) -> tuple[Any, list[Issue]]:
    """:func:`load_json` without its last check, for a caller that proves it another way: a number
    literal too large for a float (``1e400``) is left as ``inf`` in the document.

    The caller must then call :func:`overflow_issue` unless it has seen every float of the
    document to be finite (the validator's shape check does, for a valid document).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        # Keys repeat, values seldom do: caching only keys parses real trajectories a quarter faster.
        return jiter.from_json(data, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys"), []
    except ValueError:
        pass
    if not data.strip():
        return None, [Issue("", "json.empty", "the file is empty" if source else "the input is empty")]
    return _diagnose(data)


def overflow_issue(doc: Any, data: bytes | bytearray | memoryview) -> Issue | None:
    """The ``json.non-finite`` error of a number literal in ``data`` that parsed to infinity in ``doc``."""
    if not isinstance(data, bytes):
        data = bytes(data)
    return _overflow(doc, data)


# Digits made all "0", "E" made "e" and "+" dropped, so that one plain substring search (C speed,
# unlike a regex over text full of the letter e) finds every literal with an exponent of three or
# more digits, the ones that can parse to infinity.
_ZEROED = bytes.maketrans(b"123456789E", b"000000000e")
_OVERFLOW_MARK = b"0e000"
# A literal with an exponent of at most two digits overflows only with an integer part of more
# than 200 digits (10**209 * 10**99 is over the largest float): such a run is looked for too.
_LONG_INTEGER_PART = b"0" * 209
_NUMBER_CHARS = frozenset(b"0.-")
_SPACE = frozenset(b" \t\r\n")
_BEFORE_VALUE = frozenset(b":,[")


def _may_overflow(data: bytes) -> bool:
    """Whether ``data`` holds a number literal that could be too large for a float.

    Cheap and without false negatives: a run of 209 digits, or an exponent of three digits or
    more whose literal starts a JSON value (a number after ``:``, ``,``, ``[`` or at the start,
    which rules out the ones inside strings).
    """
    zeroed = data.translate(_ZEROED, b"+")
    if _LONG_INTEGER_PART in zeroed:
        return True
    i = zeroed.find(_OVERFLOW_MARK)
    while i >= 0:
        j = i
        while j > 0 and zeroed[j - 1] in _NUMBER_CHARS:
            j -= 1
        while j > 0 and zeroed[j - 1] in _SPACE:
            j -= 1
        if j == 0 or zeroed[j - 1] in _BEFORE_VALUE:
            return True
        i = zeroed.find(_OVERFLOW_MARK, i + len(_OVERFLOW_MARK))
    return False


def _overflow(doc: Any, data: bytes) -> Issue | None:
    """A literal such as ``1e400`` parses to infinity: refused like ``Infinity`` itself. Only documents
    with such a literal somewhere (:func:`_may_overflow`) are walked to find it."""
    if not _may_overflow(data) or not _has_infinity(doc):
        return None
    where = _first_infinity(doc, "")
    if where is None:
        return None
    return Issue(where, "json.non-finite", f"the number at {where or '/'} is too large for a 64-bit float")


def _has_infinity(doc: Any) -> bool:
    """Whether any float in ``doc`` is infinite: one loop, no pointers (those only once one is found)."""
    stack = [doc]
    inf = math.inf
    while stack:
        value = stack.pop()
        t = type(value)
        if t is dict:
            stack.extend(value.values())
        elif t is list:
            stack.extend(value)
        elif t is float and (value == inf or value == -inf):
            return True
    return False


def _first_infinity(value: Any, pointer: str) -> str | None:
    """The JSON pointer of the first infinite float in ``value``, or None."""
    if isinstance(value, float):
        return pointer if math.isinf(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first_infinity(item, f"{pointer}/{escape_pointer(str(key))}")
        if found is not None:
            return found
    return None


def _diagnose(data: bytes) -> tuple[Any, list[Issue]]:
    """The slow path: say exactly why the fast parse refused ``data`` (or list its duplicate keys)."""
    try:
        doc = jiter.from_json(data, allow_inf_nan=False, cache_mode="keys")
    except ValueError as exc:
        strict_error = str(exc)
    else:
        return doc, _duplicate_keys(data)
    try:
        jiter.from_json(data, allow_inf_nan=True)
    except ValueError:
        pass
    else:
        where = strict_error.rsplit(" at ", 1)[-1] if " at line " in strict_error else "somewhere"
        return None, [Issue("", "json.non-finite",
                            f"NaN and Infinity are not JSON numbers (the first is at {where})")]
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, [_orjson_issue(data, exc)]
    return None, [Issue("", "json.syntax", f"not valid JSON: {strict_error}")]


def _orjson_issue(data: bytes, exc: orjson.JSONDecodeError) -> Issue:
    msg = str(exc)
    pos = f"line {exc.lineno}, column {exc.colno} (byte {exc.pos})"
    if "surrogate" in msg:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return Issue("", "json.encoding", f"not UTF-8: invalid byte at offset {uexc.start}")
        return Issue("", "json.surrogate",
                     f"a \\u escape at {pos} is a lone surrogate (\\ud800-\\udfff without its pair), "
                     "which is not Unicode text")
    if "UTF-8" in msg or "utf-8" in msg:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return Issue("", "json.encoding", f"not UTF-8: invalid byte at offset {uexc.start}")
        return Issue("", "json.encoding", f"not valid UTF-8 text at {pos}")
    if exc.pos >= len(data.rstrip()) or "end of" in msg.lower():
        return Issue("", "json.truncated", f"the JSON ends early at {pos}")
    return Issue("", "json.syntax", f"not valid JSON at {pos}: {exc.msg}")


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers which of its keys came more than once."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _duplicate_keys(data: bytes) -> list[Issue]:
    """One warning per duplicated key, at the pointer of the object holding it (document order)."""
    found: list[Issue] = []
    stack: list[tuple[str, Any]] = [("", json.loads(data, object_pairs_hook=_object))]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, _Object):
            for key in value.duplicates:
                found.append(Issue(f"{pointer}/{escape_pointer(key)}", "json.duplicate-key",
                                   f"the key {key!r} appears more than once in this object; "
                                   "the last value is kept", "warning"))
            stack.extend((f"{pointer}/{escape_pointer(k)}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(value))))
    return found
