"""Reading what ``atif upload`` is given: converted output, ATIF files, or raw runner output.

Inputs, decided per path given:

* a ``*.jsonl`` trials file, or a folder holding ``trials.jsonl`` (the output of ``atif convert``):
  one trial record per line; ``trajectory`` is an inline ATIF object or a path relative to the
  file; the ``tasks.jsonl`` beside it gives the tasks' instructions;
* an ATIF ``.json`` file, or a folder whose JSON files are all ATIF: one trial per file, its task
  taken from ``extra.task_name`` (or ``extra.task``), else from the name of the file's folder;
* anything else is raw runner output, converted with :func:`atif.adapters.convert.iter_convert`.

Each trial comes out as a :class:`~atif.trial.Converted` (``raw`` holds a trajectory file's bytes
as read, so they are stored verbatim; ``trial.trajectory`` the path they were read from), each
problem as a :class:`~atif.trial.Failure` (``skipped`` for warnings: nothing was lost).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pydantic
import xxhash

from atif.adapters.convert import CANDIDATE_SUFFIXES, iter_convert
from atif.adapters.naming import TrialKeys
from atif.errors import AtifError
from atif.schema.issues import Issue
from atif.schema.jsonio import load_json, max_file_bytes, too_large
from atif.schema.jsonio import read_file as read_input
from atif.schema.validate import load_trajectory
from atif.trial import Converted, Failure, Trial, Unchanged, trajectory_totals

__all__ = ["KnownLines", "read_file", "read_sources"]

KnownLines = Callable[[list[str]], dict[str, tuple[str, str, str | None, str | None, str, int, str | None]]]
"""Given the keys of trials-file lines (:func:`input_key`), the stored trials read from such a
line before: ``key -> (trial_id, record_hash, input_file, input_file_key, task_name, epoch,
input_file_stat)``."""


def input_key(data: bytes) -> str:
    """The hash a re-upload compares: xxh3, 128 bits (about 100 times faster than sha256 on a
    trial's 100 KB, and no accidental collision in any store's lifetime)."""
    return xxhash.xxh3_128_hexdigest(data)


_KNOWN_BLOCK = 512  # trials-file lines looked up at once

SETTLED_NS = 2_000_000_000
"""How long ago a file must have last changed for its :func:`file_stat` to be trusted: well
beyond the granularity of any file system's timestamps, so that a change made in the same
clock tick as the stat is never taken for no change."""


def file_stat(path: str) -> str | None:
    """``dev:ino:size:mtime_ns:ctime_ns`` of a file that last changed more than :data:`SETTLED_NS` ago.

    Equal figures mean equal bytes: writing a file moves its ``ctime`` forward, which no tool
    can set back (only the system clock can), and replacing it changes its inode. None for a
    file changed moments ago or that cannot be stat'ed: its bytes are read and hashed instead.
    Always None on Windows, where ``st_ctime`` is the creation time, which writing leaves alone.
    """
    if os.name == "nt":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLED_NS:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"

LineJob = tuple[bytes, str, int, str, str]
"""A trials-file line to read: ``(line, where, line number, folder of the file, line key)``."""
LineReader = Callable[[list["LineJob | Unchanged"]], Iterable["Converted | Failure | Unchanged | Any"]]
"""Reads a block of lines in order (e.g. in worker processes, with :func:`read_line`); what it
returns for a line is passed on as that line's trial."""


def read_line(job: LineJob | Unchanged) -> Converted | Failure | Unchanged:
    """One trials-file line as a trial (an :class:`~atif.trial.Unchanged` passes through); a
    module-level function, so that worker processes can run it. The task's instruction is
    filled in by the reader of the file."""
    if isinstance(job, Unchanged):
        return job
    line, where, n, base_name, key = job
    return _trial_line(line, where, n, Path(base_name), base_name, {}, key)

_ATIF_MARK = re.compile(rb'"schema_version"\s*:\s*"ATIF-v')
_SNIFF_BYTES = 65536
_TRIALS_SNIFF_LINES = 5


def read_file(path: str | os.PathLike[str], *, head: int | None = None) -> bytes:
    """A file's bytes (only the first ``head`` bytes when given): every read of this module.

    Whole files go through the schema layer's reader, so the one size limit (``ATIF_MAX_FILE_MB``)
    and its ``file.too-large`` message hold for upload as for validate and convert.
    """
    if head is not None:
        with open(path, "rb") as f:
            return f.read(head)
    data, issues = read_input(path)
    if data is None:
        if issues[0].code == "file.not-found":
            raise FileNotFoundError(path)
        raise _Unreadable(issues[0])
    return data


class _Unreadable(OSError):
    """A file the schema layer's reader refused (not found, too large, ...)."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(f"[{issue.code}] {issue.message}")
        self.strerror = f"[{issue.code}] {issue.message}"


def read_sources(
    sources: Iterable[str | os.PathLike[str]], *, task: str | None = None, task_from: str | None = None,
    known: KnownLines | None = None, line_reader: LineReader | None = None,
) -> Iterator[Converted | Failure | Unchanged | Any]:
    """Every trial found in ``sources``, one at a time, in order (see the module docstring).

    Raw runner output is converted as ``atif convert`` converts it: ``task`` / ``task_from`` name
    the task, and trial keys are made unique across all the inputs in the same way. With
    ``known``, a trials-file line stored before (same bytes, and its trajectory file's bytes
    still hashing to the stored key) comes out as :class:`~atif.trial.Unchanged`, unparsed.
    ``line_reader`` reads the lines of trials files in blocks instead of one at a time here.
    """
    keys = TrialKeys()

    def raw(path: Path) -> Iterator[Converted | Failure]:
        return _raw(path, task=task, task_from=task_from, keys=keys)

    for src in sources:
        path = Path(src)
        if not path.exists():
            yield Failure(str(path), "no such file or directory")
        elif path.is_dir():
            if (path / "trials.jsonl").is_file():
                yield from _trials_file(path / "trials.jsonl", known, line_reader)
            else:
                files = _atif_dir_files(path)
                if files is not None:
                    for f in files:
                        yield _atif_file(f)
                else:
                    yield from raw(path)
        elif path.suffix.lower() in (".jsonl", ".ndjson") and _looks_like_trials(path):
            yield from _trials_file(path, known, line_reader)
        elif path.suffix.lower() == ".json" and _looks_atif(path):
            yield _atif_file(path)
        else:
            yield from raw(path)


def _errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


def _warnings(where: str, issues: list[Issue]) -> list[str]:
    return [f"{where}: {i.path or '/'}: [{i.code}] {i.message}" for i in issues if i.severity != "error"]


def _pydantic_reason(exc: pydantic.ValidationError) -> str:
    errs = exc.errors(include_url=False)
    parts = []
    for err in errs:
        loc = "/" + "/".join(str(p) for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(parts) - 1} more)" if len(parts) > 1 else ""
    return parts[0] + more


def _issue_reason(issues: list[Any]) -> str:
    first = issues[0]
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{first.path or '/'}: [{first.code}] {first.message}{more}"


def _join(base_name: str, base: Path, rel: str) -> str:
    """``str(base / rel)``; plain string joining where it gives the same (most paths), as pathlib costs."""
    if os.path.isabs(rel):
        return str(Path(rel))
    if os.sep != "/" or base_name == "/" or rel.startswith(".") or "/." in rel or "//" in rel or rel.endswith("/"):
        return str(base / rel)
    return base_name + "/" + rel if base_name != "." else rel


def _head(path: Path) -> bytes | None:
    try:
        return read_file(path, head=_SNIFF_BYTES)
    except OSError:
        return None


def _looks_atif(path: Path) -> bool:
    head = _head(path)
    return head is not None and _ATIF_MARK.search(head) is not None


def _looks_like_trials(path: Path) -> bool:
    if path.name == "trials.jsonl":
        return True
    head = _head(path)
    if head is None:
        return False
    lines = head.split(b"\n")
    whole = lines if len(head) < _SNIFF_BYTES else lines[:-1]  # the last line may be cut short
    for line in [ln for ln in whole if ln.strip()][:_TRIALS_SNIFF_LINES]:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "task_name" in obj:
            return True
    if not whole and head.lstrip().startswith(b"{"):
        return b'"task_name"' in head  # one record longer than the sniffed head
    return False


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _atif_dir_files(root: Path) -> list[Path] | None:
    """The ATIF files of a folder, or None when it holds any other JSON-like file (or none at all)."""
    found = []
    for p in _walk(root):
        suffix = p.suffix.lower()
        if suffix not in CANDIDATE_SUFFIXES:
            continue
        if suffix != ".json" or not _looks_atif(p):
            return None
        found.append(p)
    return found or None


def _instructions(trials_path: Path) -> dict[str, str]:
    """Task name -> instruction from the ``tasks.jsonl`` that ``atif convert`` writes beside the trials."""
    tasks_path = trials_path.parent / "tasks.jsonl"
    found: dict[str, str] = {}
    try:
        data = read_file(tasks_path) if tasks_path.is_file() else b""
    except OSError:
        return found  # a hint only: the tasks come from the trials all the same
    for line in data.splitlines():
        try:
            task = orjson.loads(line) if line.strip() else None
        except orjson.JSONDecodeError:
            continue
        if isinstance(task, dict) and isinstance(task.get("name"), str) and isinstance(task.get("instruction"), str):
            found.setdefault(task["name"], task["instruction"])
    return found


def _trials_file(
    path: Path, known: KnownLines | None = None, line_reader: LineReader | None = None
) -> Iterator[Converted | Failure | Unchanged | Any]:
    instructions = _instructions(path)
    base = path.parent
    base_name = str(base)
    try:
        lines = path.open("rb")  # streamed: a trials file with inline trajectories can be large
    except OSError as exc:
        yield Failure(str(path), f"cannot read: {exc.strerror or exc}")
        return
    block: list[tuple[int, bytes]] = []
    with lines:
        for n, line in enumerate(lines, start=1):
            if line.strip():
                block.append((n, line))
                if len(block) >= _KNOWN_BLOCK:
                    yield from _trial_lines(block, path, base, base_name, instructions, known, line_reader)
                    block = []
        yield from _trial_lines(block, path, base, base_name, instructions, known, line_reader)


def _trial_lines(
    block: list[tuple[int, bytes]], path: Path, base: Path, base_name: str, instructions: dict[str, str],
    known: KnownLines | None, line_reader: LineReader | None = None,
) -> Iterator[Converted | Failure | Unchanged | Any]:
    """The trials of a block of lines; with ``known``, lines stored before are recognised by their bytes."""
    keys = [input_key(line.rstrip(b"\r\n")) for _, line in block]
    found = known(keys) if known is not None and keys else {}
    jobs: list[LineJob | Unchanged] = []
    for (n, line), key in zip(block, keys, strict=True):
        hit = found.get(key)
        if hit is not None:
            trial_id, record_hash, input_file, file_key, task_name, epoch, stat = hit
            if input_file is None or _same_file(_join(base_name, base, input_file), file_key, stat):
                jobs.append(Unchanged(f"{path}:{n}", trial_id, record_hash, task_name, epoch,
                                      instruction=instructions.get(task_name)))
                continue
        jobs.append((line, f"{path}:{n}", n, base_name, key))
    if line_reader is None:
        for job in jobs:
            yield job if isinstance(job, Unchanged) else _trial_line(
                job[0], job[1], job[2], base, base_name, instructions, job[4])
        return
    for got in line_reader(jobs):
        converted = getattr(got, "converted", got)  # a reader may wrap what it read
        if isinstance(converted, Converted) and converted.instruction is None:
            converted.instruction = instructions.get(converted.trial.task_name)
        yield got


def _same_file(path: str, key: str | None, stat: str | None) -> bool:
    """Whether the file still holds the bytes hashed as ``key``: by its :func:`file_stat` when
    one was stored and it matches (no read), else by reading and hashing it."""
    if stat is not None and file_stat(path) == stat:
        return True
    return _hashes_to(path, key)


def _hashes_to(path: str, key: str | None) -> bool:
    """Whether the file's bytes still have the :func:`input_key` ``key`` (False when it cannot be read)."""
    try:
        data = read_file(path)
    except OSError:
        return False
    return key is not None and input_key(data) == key


def _trial_line(
    line: bytes, where: str, n: int, base: Path, base_name: str, instructions: dict[str, str],
    key: str | None = None,
) -> Converted | Failure:
    limit = max_file_bytes()
    if len(line) > limit:
        return Failure(where, f"line {n}: [file.too-large] {too_large(len(line), limit, 'the line').message}")
    obj, line_issues = load_json(line)
    if _errors(line_issues):
        first = _errors(line_issues)[0]
        return Failure(where, f"line {n} is not valid JSON: [{first.code}] {first.message}")
    if not isinstance(obj, dict):
        return Failure(where, f"line {n} is not a JSON object (a trial record)")
    traj = obj.pop("trajectory", None)
    # A conversation is often as big as the trajectory: check its shape here rather than
    # have pydantic copy every message (anything unusual is left to pydantic to report).
    messages = obj.get("messages")
    if type(messages) is list and all(type(m) is dict for m in messages):
        del obj["messages"]
    else:
        messages = None
    try:
        trial = Trial.model_validate(obj)
    except pydantic.ValidationError as exc:
        return Failure(where, f"invalid trial record: {_pydantic_reason(exc)}")
    if messages is not None:
        trial.messages = messages
    item = Converted(None, trial, where, where, warnings=_warnings(where, line_issues),
                     instruction=instructions.get(trial.task_name))
    # Only a line read without warnings is recognised again unparsed: a re-upload reports the same.
    item.input_key = key if not item.warnings else None
    if traj is None:
        return item
    if isinstance(traj, dict):
        item.trajectory, item.base_dir = traj, base_name
        return item
    if not isinstance(traj, str) or not traj:
        return Failure(where, "`trajectory` must be an ATIF object or a path to one")
    tpath = _join(base_name, base, traj)
    # Taken before the read: a change made after it moves ctime on, so the next upload reads the file.
    stat = file_stat(tpath)
    try:
        raw = read_file(tpath)
    except FileNotFoundError:
        return Failure(where, f"trajectory file {traj} not found (looked at {tpath})")
    except OSError as exc:
        return Failure(where, f"cannot read trajectory file {tpath}: {exc.strerror or exc}")
    doc, issues = load_trajectory(raw, source=tpath)
    if _errors(issues):
        return Failure(tpath, _issue_reason(_errors(issues)))
    if not isinstance(doc, dict):
        return Failure(tpath, "/: [json.not-object] expected an ATIF trajectory object")
    trial.trajectory = tpath
    item.trajectory, item.raw, item.base_dir = doc, raw, os.path.dirname(tpath)
    item.warnings += _warnings(tpath, issues)
    item.input_file, item.input_file_key = traj, input_key(raw)
    if stat is not None and stat.split(":")[2] == str(len(raw)):
        item.input_file_stat = stat
    if item.warnings:
        item.input_key = None
    return item


def _atif_file(path: Path) -> Converted | Failure:
    try:
        raw = read_file(path)
    except OSError as exc:
        return Failure(str(path), f"cannot read: {exc.strerror or exc}")
    doc, issues = load_trajectory(raw, source=str(path))
    if _errors(issues):
        return Failure(str(path), _issue_reason(_errors(issues)))
    if not isinstance(doc, dict):
        return Failure(str(path), "/: [json.not-object] expected an ATIF trajectory object")
    extra_value = doc.get("extra")
    extra: dict[str, Any] = extra_value if isinstance(extra_value, dict) else {}
    task = extra.get("task_name") or extra.get("task")
    if not isinstance(task, str) or not task:
        task = path.parent.name or path.stem
    record: dict[str, Any] = {"task_name": task, "metadata": {"source_format": "atif"}}
    if isinstance(extra.get("trial_id"), str):
        record["trial_id"] = extra["trial_id"]
    try:
        totals = trajectory_totals(doc)
    except (TypeError, ValueError, AttributeError):
        totals = {}  # a malformed trajectory; validation names the problem
    record.update({k: v for k, v in totals.items() if v is not None})
    try:
        trial = Trial.model_validate(record)
    except pydantic.ValidationError as exc:
        return Failure(str(path), f"cannot build a trial from this trajectory: {_pydantic_reason(exc)}")
    trial.trajectory = str(path)
    return Converted(doc, trial, path.stem, str(path), warnings=_warnings(str(path), issues), raw=raw,
                     base_dir=str(path.parent))


def _raw(path: Path, *, task: str | None, task_from: str | None, keys: TrialKeys) -> Iterator[Converted | Failure]:
    try:
        for r in iter_convert([path], task=task, task_from=task_from, keys=keys):
            if isinstance(r, Converted):
                r.validated = True  # iter_convert checked it in strict mode
            yield r
    except AtifError as exc:
        yield Failure(str(path), str(exc))
