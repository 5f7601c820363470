"""ATIF files as input: pass them through, upgraded to ATIF-v1.8 and made self-contained.

Rules (shared with the Harbor adapter, whose trajectories are ATIF already):

* **Upgrade.** Every ATIF-v1.x document is a valid v1.8 document, so the upgrade only sets
  ``schema_version`` (of the root and of every embedded subagent). The original version is
  kept in ``trial.metadata["original_schema_version"]``.
* **Continuations are stitched.** When ``continued_trajectory_ref`` names a file next to the
  document (``trajectory.cont-1.json`` ...), its steps are appended and step ids renumbered,
  so one trial is one document. Steps the runner copied into the continuation for context
  keep their ``is_copied_context: true`` marker (nothing is dropped). ``final_metrics`` are
  those of the last file, since Harbor writes running totals into each continuation, with
  ``total_steps`` set to the stitched count. The root ``extra.continuations`` lists each file
  with the step id it starts at. A tool_call_id that a later file repeats is renamed
  ``<id>~cont<N>`` (ATIF wants them unique per document), the old id kept in the call's
  ``extra.original_tool_call_id``. A missing continuation file is a warning; the trajectory
  then ends where the first file ends.
* **Subagent files are embedded.** A ``subagent_trajectory_ref`` whose ``trajectory_path`` is
  a file next to the document is read (its own continuations and subagents processed the same
  way) and embedded in ``subagent_trajectories`` (ATIF-v1.7); the ref then names it by
  ``trajectory_id`` and keeps the old path in ``extra.trajectory_path``. The embedded id is the
  subagent's own ``trajectory_id``, else the ref's, else the file name without ``.json``.
  Unreadable subagent files are warnings, and their refs stay as they were.

Trial key: ``trajectory_id``, else ``session_id``, else the file stem. Task name:
``extra.task_name`` (or ``extra.task``), else the name of the folder holding the file.
A continuation file (``<stem>.cont-<N>.json`` reached from ``<stem>.json`` by its
``continued_trajectory_ref`` chain) is skipped as an input of its own: it is stitched into that file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.builder import ATIF_VERSION, make_trial
from atif.adapters.jsonio import load_json_cached, read_json, sniff_json
from atif.adapters.values import obj
from atif.errors import AtifError

__all__ = ["AtifAdapter", "continuation_of", "looks_like_atif", "resolve_trajectory"]

_CONT = re.compile(r"^(?P<stem>.+)\.cont-(?P<n>\d+)\.json$")
MAX_CONTINUATIONS = 10_000


def looks_like_atif(doc: Any) -> tuple[bool, str]:
    """Whether a parsed JSON value is an ATIF trajectory, and why (not)."""
    if not isinstance(doc, dict):
        return False, f"a JSON {type(doc).__name__}, not an ATIF object"
    version = doc.get("schema_version")
    if isinstance(version, str) and version.startswith("ATIF-"):
        return True, f"schema_version {version}"
    agent, steps = doc.get("agent"), doc.get("steps")
    if isinstance(agent, dict) and "name" in agent and isinstance(steps, list) and (
        not steps or (isinstance(steps[0], dict) and "step_id" in steps[0])
    ):
        return True, "an object with agent and steps"
    return False, "no ATIF schema_version and no agent + steps"


def _upgrade(doc: dict[str, Any]) -> None:
    doc["schema_version"] = ATIF_VERSION
    for sub in doc.get("subagent_trajectories") or []:
        if isinstance(sub, dict):
            _upgrade(sub)


def _call_ids(doc: dict[str, Any]) -> set[str]:
    ids: set[str] = set()
    for s in doc.get("steps") or []:
        for c in (s.get("tool_calls") or []) if isinstance(s, dict) else []:
            if isinstance(c, dict) and isinstance(c.get("tool_call_id"), str):
                ids.add(c["tool_call_id"])
    return ids


def _rename_repeated_calls(steps: list[Any], taken: set[str], n: int) -> None:
    for s in steps:
        if not isinstance(s, dict):
            continue
        renamed: dict[str, str] = {}
        for c in s.get("tool_calls") or []:
            if isinstance(c, dict) and c.get("tool_call_id") in taken:
                old = c["tool_call_id"]
                new = f"{old}~cont{n}"
                while new in taken:
                    new += "_"
                c["tool_call_id"] = new
                c["extra"] = {**(c.get("extra") or {}), "original_tool_call_id": old}
                renamed[old] = new
        for r in (s.get("observation") or {}).get("results") or []:
            if isinstance(r, dict) and r.get("source_call_id") in renamed:
                r["source_call_id"] = renamed[r["source_call_id"]]
        for c in s.get("tool_calls") or []:
            if isinstance(c, dict) and isinstance(c.get("tool_call_id"), str):
                taken.add(c["tool_call_id"])


def _stitch(doc: dict[str, Any], base: Path, warnings: list[str], where: str) -> list[str]:
    """Append continuation files to ``doc`` in place; return the files read."""
    files: list[str] = []
    ref = doc.get("continued_trajectory_ref")
    if not isinstance(ref, str) or not ref:
        return files
    taken = _call_ids(doc)
    continuations: list[dict[str, Any]] = []
    seen: set[Path] = set()
    n = 0
    while isinstance(ref, str) and ref and n < MAX_CONTINUATIONS:
        target = (base / ref) if "://" not in ref else None
        if target is None or not target.is_file():
            warnings.append(f"{where}: continuation {ref!r} not found; the trajectory ends at step {len(doc['steps'])}")
            doc.setdefault("extra", {})
            doc["extra"] = {**(doc.get("extra") or {}), "missing_continuation": ref}
            break
        key = target.resolve()
        if key in seen:
            warnings.append(f"{where}: continuation {ref!r} loops back; stopped there")
            break
        seen.add(key)
        n += 1
        try:
            cont = read_json(target)
        except AtifError as exc:
            warnings.append(f"{where}: continuation {ref!r} unreadable ({exc}); the trajectory ends there")
            break
        ok, why = looks_like_atif(cont)
        if not ok or not isinstance(cont.get("steps"), list):
            warnings.append(f"{where}: continuation {ref!r} is not ATIF ({why}); the trajectory ends there")
            break
        steps = [s for s in cont["steps"] if isinstance(s, dict)]
        _rename_repeated_calls(steps, taken, n)
        first = len(doc["steps"]) + 1
        for i, s in enumerate(steps):
            s["step_id"] = first + i
        doc["steps"].extend(steps)
        continuations.append(
            {
                "file": ref,
                "first_step_id": first,
                "steps": len(steps),
                "copied_context_steps": sum(1 for s in steps if s.get("is_copied_context")),
            }
        )
        if isinstance(cont.get("final_metrics"), dict):
            doc["final_metrics"] = cont["final_metrics"]
        for sub in cont.get("subagent_trajectories") or []:
            doc.setdefault("subagent_trajectories", []).append(sub)
        files.append(ref)
        ref = cont.get("continued_trajectory_ref")
    doc.pop("continued_trajectory_ref", None)
    if continuations:
        doc["extra"] = {**(doc.get("extra") or {}), "continuations": continuations}
        fm = doc.get("final_metrics")
        if isinstance(fm, dict) and fm.get("total_steps") is not None:
            fm["total_steps"] = len(doc["steps"])
    return files


def _embed_subagents(doc: dict[str, Any], base: Path, warnings: list[str], where: str, depth: int) -> None:
    embedded: dict[str, str] = {}  # resolved path -> trajectory_id
    subs: list[Any] = list(doc.get("subagent_trajectories") or [])
    ids = {s.get("trajectory_id") for s in subs if isinstance(s, dict)}
    for step in doc.get("steps") or []:
        if not isinstance(step, dict):
            continue
        for result in (step.get("observation") or {}).get("results") or []:
            if not isinstance(result, dict):
                continue
            for ref in result.get("subagent_trajectory_ref") or []:
                if not isinstance(ref, dict):
                    continue
                path = ref.get("trajectory_path")
                if not isinstance(path, str) or not path or "://" in path:
                    continue
                target = base / path
                key = str(target.resolve())
                if key not in embedded:
                    if depth > 20:
                        warnings.append(f"{where}: subagent {path!r} nested too deep; left as a file ref")
                        continue
                    if not target.is_file():
                        warnings.append(f"{where}: subagent trajectory {path!r} not found; ref left as it was")
                        continue
                    try:
                        sub, _ = resolve_trajectory(target, warnings, depth=depth + 1)
                    except AtifError as exc:
                        warnings.append(f"{where}: subagent trajectory {path!r} unreadable ({exc}); ref left as it was")
                        continue
                    tid = sub.get("trajectory_id") or ref.get("trajectory_id") or Path(path).name.removesuffix(".json")
                    tid = str(tid)
                    while tid in ids:
                        tid += "_"
                    sub["trajectory_id"] = tid
                    ids.add(tid)
                    subs.append(sub)
                    embedded[key] = tid
                ref["trajectory_id"] = embedded[key]
                del ref["trajectory_path"]
                ref["extra"] = {**(ref.get("extra") or {}), "trajectory_path": path}
    if subs:
        doc["subagent_trajectories"] = subs


def resolve_trajectory(path: Path, warnings: list[str], *, depth: int = 0) -> tuple[dict[str, Any], str | None]:
    """Read an ATIF file and make it a self-contained ATIF-v1.8 document (see the module docstring).

    Returns the document (freshly parsed, then edited) and its original ``schema_version``;
    appends to ``warnings``.
    Raises :class:`~atif.errors.AtifError` when the file cannot be read or is not ATIF.
    """
    # A fresh parse is cheaper than a deep copy of the cached one, and this function edits the result.
    doc = read_json(path)
    ok, why = looks_like_atif(doc)
    if not ok:
        raise AtifError(f"{path}: not an ATIF trajectory ({why})")
    original = doc.get("schema_version") if isinstance(doc.get("schema_version"), str) else None
    if not isinstance(doc.get("steps"), list):
        raise AtifError(f"{path}: `steps` is not a list")
    _stitch(doc, path.parent, warnings, str(path))
    _embed_subagents(doc, path.parent, warnings, str(path), depth)
    _upgrade(doc)
    return doc, original


def continuation_of(path: Path) -> Path | None:
    """The first file of the chain ``path`` continues (``<stem>.json`` whose ``continued_trajectory_ref``
    chain reaches ``path``), or None when ``path`` is not such a continuation file."""
    m = _CONT.match(path.name)
    if not m:
        return None
    head = path.parent / f"{m.group('stem')}.json"
    if not head.is_file():
        return None
    current, seen = head, set()
    for _ in range(int(m.group("n"))):
        try:
            doc = load_json_cached(current)
        except AtifError:
            return None
        ref = doc.get("continued_trajectory_ref") if isinstance(doc, dict) else None
        if not isinstance(ref, str) or not ref or "://" in ref:
            return None
        current = current.parent / ref
        if current in seen:
            return None
        seen.add(current)
        if current.name == path.name and current.parent.resolve() == path.parent.resolve():
            return head
    return None


class AtifAdapter:
    """ATIF trajectory files (any v1.x), passed through as ATIF-v1.8."""

    name = "atif"
    description = "ATIF trajectory files (any ATIF-v1.x), upgraded to v1.8"

    def sniff(self, path: Path) -> Sniff:
        """An ATIF file is a JSON object with an ``ATIF-`` schema_version, or with agent + steps."""
        if path.is_dir():
            return Sniff(False, "a directory")
        if path.suffix.lower() != ".json":
            return Sniff(False, "not a .json file")
        doc, why = sniff_json(path)
        if why:
            return Sniff(False, why)
        ok, reason = looks_like_atif(doc)
        return Sniff(ok, reason)

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per file, unless the file is a continuation of a sibling (skipped)."""
        head = continuation_of(path)
        if head is not None:
            yield Failure(str(path), f"continuation of {head.name}; stitched into it", skipped=True)
            return
        warnings: list[str] = []
        try:
            doc, original = resolve_trajectory(path, warnings)
        except AtifError as exc:
            yield Failure(str(path), str(exc))
            return
        extra = obj(doc.get("extra"))
        task = extra.get("task_name") or extra.get("task") or path.absolute().parent.name or "default"
        key = doc.get("trajectory_id") or doc.get("session_id") or path.name.removesuffix(".json")
        trial = make_trial(
            doc,
            task_name=str(task),
            source_format=self.name,
            source_path=str(path),
            source_ids={"session_id": doc.get("session_id"), "trajectory_id": doc.get("trajectory_id")},
            metadata={"original_schema_version": original} if original else None,
            trial_id=str(key),
        )
        yield Converted(trajectory=doc, trial=trial, trial_key=str(key), source=str(path), warnings=warnings)
