"""The conversion pipeline: find inputs, pick an adapter for each, validate, write ATIF + trials.

Output layout of :func:`convert`::

    OUT/trajectories/<task>/<trial_key>.json   one ATIF-v1.8 document per trial (sorted keys, indented)
    OUT/trials.jsonl                           one Trial per line (elluminate field names), sorted
    OUT/tasks.jsonl                            task name + instruction, when some input carries one

Every trajectory is checked with :func:`atif.schema.validate` in strict mode before it is
written; an invalid one is a failure naming its issues and is never written. Bad input never
stops the batch: it becomes a failure (or a skip) with a one-line reason, and everything else
is still converted. Running twice on the same input gives byte-identical files.

Inputs: a file or directory given on the command line is offered to the adapters in
registry order (or to the ``--from`` adapter only); a directory no adapter claims as a whole
(e.g. a folder of chat logs) is walked, and its JSON-like files are offered one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atif.adapters.base import Adapter, Converted, ConvertOptions, Failure, Sniff
from atif.adapters.jsonio import drain_warnings, dump_json, dump_line, parse, read_bytes, read_error
from atif.adapters.naming import TrialKeys, compile_task_from, task_override
from atif.adapters.registry import get_adapter, sniff_all
from atif.adapters.values import safe_name
from atif.errors import AdapterError, AtifError, ParseError
from atif.progress import Progress, ProgressCallback
from atif.schema.jsonio import max_file_bytes, too_large
from atif.schema.validate import validate

__all__ = ["ConvertResult", "InputReport", "TrialKeys", "convert", "iter_convert", "lost_conversation"]

# Files considered when walking a directory; anything else is passed over silently.
CANDIDATE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".eval", ".traj")
MAX_ISSUES_IN_REASON = 5


@dataclass(slots=True)
class InputReport:
    """What happened to one input (a file or directory handed to one adapter)."""

    source: str
    """The input path as found."""
    adapter: str | None = None
    """Name of the adapter that read it (None when none did)."""
    trials: int = 0
    """Trials converted from it."""
    warnings: list[str] = field(default_factory=list)
    """Adapter warnings (e.g. unmatched records of a mapping, patched tool arguments) and validation warnings."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """``(source, reason)`` of every trial or record that could not be converted."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(source, reason)`` of what was passed over on purpose."""
    atif_errors: list[str] = field(default_factory=list)
    """ATIF validation errors of results that were rejected."""
    records_read: int = 0
    """Source records (messages, events, spans, steps) read from this input."""
    records_mapped: int = 0
    """Records that became steps, tool calls or observations."""
    records_skipped: int = 0
    """Records passed over; why is in :attr:`skip_reasons`."""
    skip_reasons: dict[str, int] = field(default_factory=dict)
    """Reason (the adapter's rule) -> number of records skipped for it."""
    counted: bool = True
    """False when the adapter does not count its records: then read = mapped = the steps and
    observation results of the output, and nothing is known to be skipped."""

    def add_tally(self, item: Converted) -> None:
        """Add one conversion's accounting (or, when its adapter does not count, its output's size)."""
        tally = item.tally
        if tally is None:
            self.counted = False
            n = _output_records(item.trajectory)
            tally = {"read": n, "mapped": n, "skipped": 0, "skip_reasons": {}}
        self.records_read += int(tally.get("read") or 0)
        self.records_mapped += int(tally.get("mapped") or 0)
        self.records_skipped += int(tally.get("skipped") or 0)
        for reason, n in (tally.get("skip_reasons") or {}).items():
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + int(n)

    @property
    def lossy(self) -> bool:
        """True when a substantial part of what was read was skipped (at least 5 records or 10%)."""
        return self.records_skipped >= 5 or (self.records_read > 0 and self.records_skipped * 10 >= self.records_read)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "adapter": self.adapter,
            "trials": self.trials,
            "records": {
                "read": self.records_read,
                "mapped": self.records_mapped,
                "skipped": self.records_skipped,
                "skip_reasons": dict(sorted(self.skip_reasons.items())),
                "counted": self.counted,
            },
            "warnings": list(self.warnings),
            "failures": [{"source": s, "reason": r} for s, r in self.failures],
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "atif_errors": list(self.atif_errors),
        }


def _output_records(trajectory: dict[str, Any] | None) -> int:
    """Steps plus observation results of a trajectory: the stand-in count for adapters that do not count."""
    n = 0
    for step in (trajectory or {}).get("steps") or []:
        if isinstance(step, dict):
            n += 1 + len((step.get("observation") or {}).get("results") or [])
    return n


@dataclass(slots=True)
class ConvertResult:
    """The outcome of :func:`convert`."""

    converted: int = 0
    """Trials converted (and written, unless a dry run)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(source, reason)`` of inputs passed over on purpose (half-written trials, unrecognised files in a walked folder)."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """``(source, reason)`` of inputs or trials that could not be converted."""
    outputs: list[Path] = field(default_factory=list)
    """Files written, trajectories first, then ``trials.jsonl`` (and ``tasks.jsonl``)."""
    adapters: dict[str, str] = field(default_factory=dict)
    """Input path -> name of the adapter picked for it."""
    inputs: list[InputReport] = field(default_factory=list)
    """Per-input detail, in the order the inputs were read."""
    dry_run: bool = False
    """True when nothing was written."""

    @property
    def ok(self) -> bool:
        """True when nothing failed (skips are not failures)."""
        return not self.failures

    @property
    def warnings(self) -> list[tuple[str, str]]:
        """``(input, warning)`` for every warning of every input."""
        return [(r.source, w) for r in self.inputs for w in r.warnings]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "converted": self.converted,
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "failed": [{"source": s, "reason": r} for s, r in self.failures],
            "outputs": [str(p) for p in self.outputs],
            "adapters": dict(self.adapters),
            "inputs": [r.to_dict() for r in self.inputs],
            "dry_run": self.dry_run,
        }


@dataclass(slots=True)
class _Job:
    path: Path
    adapter: Adapter | None
    reason: str = ""
    skip: bool = False


def _detect(path: Path) -> tuple[Adapter | None, list[tuple[str, Sniff]]]:
    return sniff_all(path)


def _declined(path: Path, answers: list[tuple[str, Sniff]]) -> str:
    if path.is_file() and path.suffix.lower() not in (".jsonl", ".ndjson", ".eval"):
        # A precise parse error beats "nobody recognised it" when the bytes are not JSON at all.
        try:
            parse(read_bytes(path), path)
        except ParseError as exc:
            return exc.reason if exc.reason.startswith("cannot read") else f"malformed JSON: {exc.reason}"
    tried = "; ".join(f"{n}: {s.reason}" for n, s in answers)
    return f"no adapter recognises this input (tried {tried})"


def _too_large(path: Path) -> str | None:
    """The size-limit failure of a file input, before any adapter reads it (sniffing included)."""
    try:
        size = path.stat().st_size if path.is_file() else 0
    except OSError:
        return None
    limit = max_file_bytes()
    return read_error(too_large(size, limit)) if size > limit else None


def _jobs(sources: Iterable[Path], source_format: str, out_dir: Path | None) -> Iterator[_Job]:
    forced: Adapter | None = None
    if source_format != "auto":
        forced = get_adapter(source_format)
    skip_dir = out_dir.resolve() if out_dir is not None else None

    def visit(path: Path, explicit: bool) -> Iterator[_Job]:
        if not path.exists():
            yield _Job(path, None, "no such file or directory")
            return
        if skip_dir is not None and path.is_dir() and path.resolve() == skip_dir:
            return
        oversize = _too_large(path)
        if oversize is not None:
            yield _Job(path, None, oversize)
            return
        if forced is not None:
            if path.is_file():
                yield _Job(path, forced)
                return
            try:
                claims = forced.sniff(path).ok
            except Exception:  # noqa: BLE001 - a sniff must never crash the batch
                claims = False
            if claims:
                yield _Job(path, forced)
                return
        else:
            adapter, answers = _detect(path)
            if adapter is not None:
                yield _Job(path, adapter)
                return
            if path.is_file():
                reason = _declined(path, answers)
                yield _Job(path, None, reason, skip=not explicit and not reason.startswith("malformed"))
                return
        if path.is_dir():
            try:
                children = sorted(path.iterdir(), key=lambda p: p.name)
            except OSError as exc:
                yield _Job(path, None, f"cannot list directory: {exc.strerror or exc}")
                return
            found = False
            for child in children:
                if child.name.startswith("."):
                    continue
                if child.is_file() and child.suffix.lower() not in CANDIDATE_SUFFIXES:
                    continue
                for job in visit(child, explicit=False):
                    found = True
                    yield job
            if not found and explicit:
                yield _Job(path, None, "no convertible input found in this directory")

    for src in sources:
        yield from visit(Path(src), explicit=True)


def lost_conversation(trajectory: dict[str, Any]) -> str | None:
    """Why a converted trajectory cannot stand for a trial (no agent step, no content at all), or None.

    A trial whose conversation was lost would be stored, judged and counted like any other and
    poison every pass rate downstream, so the pipeline turns it into a failure instead.
    """
    steps = [s for s in trajectory.get("steps") or [] if isinstance(s, dict)]
    if not any(s.get("source") == "agent" for s in steps):
        return "no agent step: the source holds no assistant output this adapter could read"
    for s in steps:
        if s.get("message") or s.get("tool_calls") or s.get("reasoning_content") or s.get("subagent_trajectory_ref"):
            return None
        if any(r.get("content") or r.get("subagent_trajectory_ref")
               for r in (s.get("observation") or {}).get("results") or [] if isinstance(r, dict)):
            return None
    return "the conversation is empty: every step has no text, tool call or result"


def _check(item: Converted) -> tuple[Converted | Failure, list[str]]:
    """Validate a converted trajectory; an invalid one becomes a Failure naming its issues,
    and so does one that lost its conversation (:func:`lost_conversation`)."""
    if item.trajectory is None:
        return item, []
    lost = lost_conversation(item.trajectory)
    if lost is not None:
        return Failure(item.source, lost), []
    report = validate(item.trajectory, mode="strict")
    for w in report.warnings:
        item.warnings.append(f"{item.trial_key}: {w.path or '/'}: [{w.code}] {w.message}")
    errors = report.errors
    if not errors:
        return item, []
    shown = "; ".join(str(e) for e in errors[:MAX_ISSUES_IN_REASON])
    more = f" (and {len(errors) - MAX_ISSUES_IN_REASON} more)" if len(errors) > MAX_ISSUES_IN_REASON else ""
    return Failure(item.source, f"the result is not valid ATIF: {shown}{more}"), [str(e) for e in errors]


def _run(job: _Job, options: ConvertOptions, report: InputReport) -> Iterator[Converted | Failure]:
    assert job.adapter is not None
    drain_warnings()  # what sniffing read is reported by the conversion that reads it again
    task_from = compile_task_from(options.task_from) if options.task_from else None
    try:
        for item in job.adapter.convert(job.path, options):
            if isinstance(item, Converted):
                report.add_tally(item)
                why = task_override(item, job.path, options.task, task_from)
                if why is not None:
                    yield Failure(item.source, why)
                    continue
                checked, errors = _check(item)
                report.warnings.extend(item.warnings)
                report.atif_errors.extend(errors)
                yield checked
            else:
                yield item
    except AtifError as exc:
        yield Failure(str(job.path), str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken input must not stop the batch
        yield Failure(str(job.path), f"{job.adapter.name} adapter crashed: {type(exc).__name__}: {exc}")
    report.warnings.extend(drain_warnings())


def _options(mapping: Path | str | None, options: ConvertOptions | None, task: str | None = None,
             task_from: str | None = None) -> ConvertOptions:
    opts = options or ConvertOptions()
    if mapping is not None:
        opts.mapping = Path(mapping)
    if task and task_from:
        raise AdapterError("give --task or --task-from, not both")
    opts.task = task or opts.task
    opts.task_from = task_from or opts.task_from
    if opts.task_from:
        compile_task_from(opts.task_from)
    return opts


def _check_format(source_format: str, mapping: Path | str | None) -> str:
    if source_format == "auto" and mapping is not None:
        return "mapping"
    if source_format != "auto":
        get_adapter(source_format)
    if source_format == "mapping" and mapping is None:
        raise AdapterError("--from mapping needs a mapping file (--mapping FILE)")
    return source_format


def iter_convert(
    sources: Iterable[Path | str],
    *,
    source_format: str = "auto",
    mapping: Path | str | None = None,
    options: ConvertOptions | None = None,
    task: str | None = None,
    task_from: str | None = None,
    keys: TrialKeys | None = None,
) -> Iterator[Converted | Failure]:
    """Convert inputs without writing: yield each validated ``Converted`` or a ``Failure``.

    Trajectories are checked with strict ATIF validation; an invalid one is yielded as a
    ``Failure``. Inputs no adapter recognises are failures too (``skipped=True`` for files
    found while walking a directory). ``Converted.trial.trajectory`` is left None.
    ``task`` / ``task_from`` name the task as ``convert`` does; trial keys are made unique as
    ``convert`` makes them (pass one :class:`TrialKeys` to several calls to share them), so a
    trial ``convert`` writes as ``key~2`` arrives here with ``trial_id`` ``<id>~2`` too, and
    an exact duplicate is a skipped ``Failure``.
    Raises :class:`AdapterError` only for an unknown ``source_format`` or a bad ``task_from``.
    """
    fmt = _check_format(source_format, mapping)
    opts = _options(mapping, options, task, task_from)
    keys = keys if keys is not None else TrialKeys()
    for job in _jobs([Path(s) for s in sources], fmt, None):
        if job.adapter is None:
            yield Failure(str(job.path), job.reason, skipped=job.skip)
            continue
        for item in _run(job, opts, InputReport(str(job.path), job.adapter.name)):
            if isinstance(item, Converted):
                _, duplicate = keys.claim(item)
                if duplicate is not None:
                    yield Failure(item.source, duplicate, skipped=True)
                    continue
            yield item


def convert(
    sources: Iterable[Path | str],
    out_dir: Path | str | None,
    *,
    source_format: str = "auto",
    mapping: Path | str | None = None,
    dry_run: bool = False,
    options: ConvertOptions | None = None,
    on_progress: ProgressCallback | None = None,
    task: str | None = None,
    task_from: str | None = None,
) -> ConvertResult:
    """Convert runner output to ``OUT/trajectories/<task>/<trial_key>.json`` and ``OUT/trials.jsonl``.

    ``source_format`` is ``auto`` (each input is sniffed) or an adapter name; a ``mapping``
    file implies the ``mapping`` adapter. With ``dry_run`` nothing is written (``out_dir``
    may be None) and the result lists, per input, the adapter, trial count, warnings and
    ATIF errors. Failures are collected, never raised; only an unknown format or a missing
    mapping file raises :class:`AdapterError`. ``on_progress`` receives a
    ``Progress(stage="converting", done, total, detail=<input>)`` as each input starts,
    and a last one when all are done. ``task`` names the task of every trial; ``task_from`` is
    a JMESPath expression on each input that gives it (see :mod:`atif.adapters.naming`); by
    default the input says, else the file's stem does.
    """
    fmt = _check_format(source_format, mapping)
    if mapping is not None and not Path(mapping).is_file():
        raise AdapterError(f"{mapping}: mapping file not found")
    opts = _options(mapping, options, task, task_from)
    keys = TrialKeys()
    out = Path(out_dir) if out_dir is not None else None
    if out is None and not dry_run:
        raise AdapterError("an output directory is needed unless this is a dry run")
    result = ConvertResult(dry_run=dry_run)
    jobs = list(_jobs([Path(s) for s in sources], fmt, out))

    records: dict[tuple[str, str], dict[str, Any]] = {}
    instructions: dict[str, str | None] = {}
    written: list[Path] = []
    for done, job in enumerate(jobs):
        if on_progress is not None:
            on_progress(Progress("converting", done, len(jobs), detail=_short(job.path)))
        report = InputReport(str(job.path), job.adapter.name if job.adapter else None)
        result.inputs.append(report)
        if job.adapter is None:
            (report.skipped if job.skip else report.failures).append((str(job.path), job.reason))
        else:
            result.adapters[str(job.path)] = job.adapter.name
            for item in _run(job, opts, report):
                if isinstance(item, Failure):
                    (report.skipped if item.skipped else report.failures).append((item.source, item.reason))
                    continue
                _, duplicate = keys.claim(item)
                if duplicate is not None:
                    report.skipped.append((item.source, duplicate))
                    continue
                report.trials += 1
                report.warnings.extend(w for w in item.warnings if "is taken; wrote" in w)
                _accept(item, out, dry_run, records, instructions, written)
        result.skipped.extend(report.skipped)
        result.failures.extend(report.failures)
    if on_progress is not None and jobs:
        on_progress(Progress("converting", len(jobs), len(jobs)))

    result.converted = len(records)
    if not dry_run and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        lines = [dump_line(rec) for _, rec in sorted(records.items())]
        trials_path = out / "trials.jsonl"
        trials_path.write_bytes(b"".join(lines))
        result.outputs = sorted(written) + [trials_path]
        if any(v for v in instructions.values()):
            tasks_path = out / "tasks.jsonl"
            tasks_path.write_bytes(
                b"".join(
                    dump_line({"name": name, "instruction": text} if text else {"name": name})
                    for name, text in sorted(instructions.items())
                )
            )
            result.outputs.append(tasks_path)
    return result


def _short(path: Path, width: int = 50) -> str:
    s = str(path)
    return s if len(s) <= width else "…" + s[-(width - 1):]


def _accept(
    item: Converted,
    out: Path | None,
    dry_run: bool,
    records: dict[tuple[str, str], dict[str, Any]],
    instructions: dict[str, str | None],
    written: list[Path],
) -> None:
    trial = item.trial
    task_dir = safe_name(trial.task_name)
    key = item.trial_key  # made unique by TrialKeys.claim
    rel: str | None = None
    if item.trajectory is not None:
        rel = f"trajectories/{task_dir}/{key}.json"
        if not dry_run and out is not None:
            path = out / rel
            if not written or written[-1].parent != path.parent:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(dump_json(item.trajectory))
            written.append(path)
    trial.trajectory = rel
    records[(task_dir, key)] = trial.model_dump(mode="json")
    if item.instruction or trial.task_name not in instructions:
        instructions[trial.task_name] = item.instruction or instructions.get(trial.task_name)
