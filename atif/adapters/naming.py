"""Task names and trial keys that one conversion run hands out (``convert`` and ``upload`` alike).

* :func:`task_override` applies ``--task NAME`` or ``--task-from EXPR`` (JMESPath on the input:
  the JSON document, or the line of a JSON Lines file the trial came from, else its first line;
  for a directory, the trial record) to a converted trial.
* :class:`TrialKeys` gives each trial a key no other trial of the run has: a trial that is the
  same as one already seen (same record, same trajectory) is dropped as a duplicate; a different
  trial with a taken key gets ``<key>~2`` (``~3`` ...) both as its file name and as its
  ``trial_id``, so that the store's key (experiment, task, trial id, epoch) tells them apart too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions

from atif.adapters.base import Converted
from atif.adapters.jsonio import iter_jsonl_lenient, load_json_cached
from atif.adapters.values import safe_name
from atif.errors import AdapterError, AtifError
from atif.schema.identity import canonical_json

__all__ = ["TrialKeys", "compile_task_from", "task_override"]


def compile_task_from(expr: str) -> Any:
    """The compiled ``--task-from`` expression; :class:`AdapterError` names a syntax error."""
    try:
        return jmespath.compile(expr)
    except jmespath.exceptions.JMESPathError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdapterError(f"--task-from {expr!r} is not a JMESPath expression: {first}") from exc


def _input_of(item: Converted, path: Path) -> Any:
    if path.is_dir():
        return item.trial.model_dump(mode="json", exclude={"messages"})
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        line = item.source.rsplit(":", 1)[-1] if item.source.startswith(f"{path}:") else ""
        want = int(line) if line.isdigit() else None
        for n, doc, _ in iter_jsonl_lenient(path):
            if doc is not None and (want is None or n == want):
                return doc
        return None
    return load_json_cached(path)


def task_override(item: Converted, path: Path, task: str | None, task_from: Any | None) -> str | None:
    """Rename ``item``'s task per ``--task`` / ``--task-from``; return why it could not be, or None."""
    if task:
        item.trial.task_name = task
        return None
    if task_from is None:
        return None
    try:
        value = task_from.search(_input_of(item, path))
    except (AtifError, jmespath.exceptions.JMESPathError, TypeError) as exc:
        return f"--task-from {task_from.expression!r}: {exc}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return f"--task-from {task_from.expression!r} gives {value!r}, not a task name"
    item.trial.task_name = value.strip()
    return None


class TrialKeys:
    """The (task, trial key) pairs of one run; see the module docstring."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], bytes] = {}

    def claim(self, item: Converted) -> tuple[str, str | None]:
        """``(key, None)`` for a trial to keep (renamed if needed), ``(key, reason)`` for a duplicate to drop."""
        task = safe_name(item.trial.task_name)
        base = safe_name(item.trial_key)
        # Where it was read (metadata: path, line) does not make a trial another one.
        fingerprint = canonical_json([item.trial.model_dump(mode="json", exclude={"trajectory", "metadata"}),
                                      item.trajectory])
        key, n = base, 1
        while (task, key) in self._seen:
            if self._seen[(task, key)] == fingerprint:
                return key, f"the same trial as {key!r} of task {item.trial.task_name!r}; kept once"
            n += 1
            key = f"{base}~{n}"
        self._seen[(task, key)] = fingerprint
        if key != base:
            item.warnings.append(f"{item.source}: trial key {base!r} of task {item.trial.task_name!r} is taken; wrote {key!r}")
            if item.trial.trial_id is not None:
                item.trial.trial_id = f"{item.trial.trial_id}~{n}"
        item.trial_key = key
        return key, None
