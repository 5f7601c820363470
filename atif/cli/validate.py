"""``atif validate`` and ``atif schema``."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from atif import VERSIONS, InputError, normalize_version, validate, validate_files
from atif.cli._common import emit_json, json_text

if TYPE_CHECKING:
    from atif import ValidationReport

# ``repair`` and ``json_schema`` are imported where used: they need the pydantic models, which
# validating does not (``atif validate`` of valid files never builds them).


def _expand(paths: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Files to validate (``-`` is stdin) and the inputs that matched nothing."""
    files: list[str] = []
    missing: list[str] = []
    for p in paths:
        if p == "-":
            files.append(p)
            continue
        path = Path(p)
        if path.is_dir():
            found = sorted(_json_files(str(path)))
            if not found:
                missing.append(f"{p}: directory holds no .json file")
            files.extend(found)
        elif path.exists():
            files.append(p)
        elif any(ch in p for ch in "*?["):
            found = sorted(glob.glob(p, recursive=True))
            if not found:
                missing.append(f"{p}: no file matches this pattern")
            files.extend(found)
        else:
            missing.append(f"{p}: no such file or directory")
    return files, missing


def _json_files(top: str) -> list[str]:
    """The ``*.json`` files under ``top``, as ``Path(top).rglob("*.json")`` finds them (symbolic links
    to files included, linked folders not entered), in a third of its time: one ``scandir`` per folder."""
    found: list[str] = []
    folders = [top]
    while folders:
        folder = folders.pop()
        try:
            entries = os.scandir(folder)
        except PermissionError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.name.endswith(".json") and entry.is_file():
                    found.append(entry.path)
    return found


@click.command("validate")
@click.argument("paths", nargs=-1, required=True)
@click.option("--version", "version", default=None, help="Check against this version (e.g. v1.8) instead of the declared one.")
@click.option("--mode", type=click.Choice(["strict", "lenient"]), default="strict", show_default=True,
              help="lenient: fields newer than the version are warnings, not errors.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--repair", is_flag=True, help="Write repaired copies and a repair log per file to -o DIR.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for --repair output (never the input's own folder).")
@click.option("--quiet", "-q", is_flag=True, help="Print only invalid files and the summary.")
@click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="Processes validating files at once (default: $ATIF_WORKERS, else one per core "
                   "when there are enough files; 1: this process only).")
def validate_cmd(paths: tuple[str, ...], version: str | None, mode: str, fmt: str, repair: bool,
                 out_dir: str | None, quiet: bool, workers: int | None) -> None:
    """Validate ATIF trajectory files: every error at once, each with a JSON pointer and a code.

    PATHS are files, directories (searched for *.json), globs, or - for stdin.
    Each file's result is printed as soon as it is known, the summary at the end.
    Exit status: 0 all valid, 1 any invalid, 2 usage error.

    \b
    Example:
      atif validate trajectories/
      atif validate run.json --format json
      atif validate 'jobs/**/trajectory.json' --repair -o repaired/
    """
    if version is not None:
        version = normalize_version(version)
        if version not in VERSIONS:
            raise click.UsageError(f"unknown version {version!r}; expected v1.0 .. v1.8")
    if repair and not out_dir:
        raise click.UsageError("--repair needs -o DIR (inputs are never overwritten)")
    files, missing = _expand(paths)
    if repair and out_dir:
        _check_repair_targets(files, Path(out_dir))
    counts = {"files": len(missing), "valid": 0, "invalid": len(missing), "errors": len(missing), "warnings": 0}
    as_json: list[dict[str, Any]] = []
    repaired: list[dict[str, Any]] = []
    if fmt != "json":
        for m in missing:
            click.echo(f"{m}", err=True)
    for rep in _reports(files, version, mode, workers, keep_documents=repair):
        counts["files"] += 1
        n_err = len(rep.errors)
        counts["valid" if rep.valid else "invalid"] += 1
        counts["errors"] += n_err
        counts["warnings"] += len(rep.issues) - n_err
        if repair and out_dir:
            line = _write_repair(rep, Path(out_dir))
            if line is not None:
                repaired.append(line)
        if fmt == "json":
            as_json.append(rep.to_dict())
        else:
            _print_report(rep, quiet)
    summary = {k: counts[k] for k in ("files", "valid", "invalid", "errors", "warnings")}
    if fmt == "json":
        emit_json({
            "summary": summary,
            "files": as_json
            + [{"source": m.split(": ")[0], "valid": False,
                "issues": [{"path": "", "code": "file.not-found", "severity": "error",
                            "message": m.split(": ", 1)[1]}]} for m in missing],
            "repaired": repaired,
        })
    else:
        for line in repaired:
            click.echo(f"repaired {line['source']} -> {line['output']} ({line['changes']} changes)")
        click.echo(
            f"{summary['files']} files, {summary['valid']} valid, {summary['invalid']} invalid, "
            f"{summary['errors']} errors, {summary['warnings']} warnings"
        )
    if counts["invalid"]:
        sys.exit(1)


def _reports(files: list[str], version: str | None, mode: str, workers: int | None,
             *, keep_documents: bool) -> Iterator[ValidationReport]:
    """Every file's report in order; stdin (``-``) is read here, the files go to :func:`atif.validate_files`."""
    run: list[str] = []
    for f in files:
        if f != "-":
            run.append(f)
            continue
        yield from validate_files(run, version, mode, workers=workers, keep_documents=keep_documents)
        run = []
        rep = validate(sys.stdin.buffer.read(), version, mode)
        rep.source = "<stdin>"
        yield rep
    yield from validate_files(run, version, mode, workers=workers, keep_documents=keep_documents)


def _print_report(r: ValidationReport, quiet: bool) -> None:
    if r.valid and (quiet or not r.issues):
        if not quiet:
            click.echo(f"{r.source}: valid ({r.version})")
        return
    errors = r.errors
    status = "valid" if r.valid else "INVALID"
    lines = [f"{r.source}: {status} ({r.version or 'unknown version'}), "
             f"{len(errors)} errors, {len(r.issues) - len(errors)} warnings"]
    lines.extend(f"  {issue.path or '/'}: {issue.severity} [{issue.code}] {issue.message}" for issue in r.issues)
    click.echo("\n".join(lines))


def _repair_target(source: str | None, out_dir: Path) -> tuple[Path, Path]:
    src = Path(source) if source and source != "<stdin>" else Path("stdin.json")
    return src, out_dir / src.name


def _check_repair_targets(files: list[str], out_dir: Path) -> None:
    """Refuse, before anything is validated or written, an -o that would overwrite an input."""
    for f in files:
        if f == "-":
            continue
        src, target = _repair_target(f, out_dir)
        if target.resolve() == src.resolve():
            raise click.UsageError(f"{src}: -o would overwrite the input; choose another folder")


def _write_repair(r: ValidationReport, out_dir: Path) -> dict[str, Any] | None:
    if not isinstance(r.document, dict):
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    from atif import repair

    src, target = _repair_target(r.source, out_dir)
    result = repair(r.document)
    r.document = None
    after = validate(result.document)
    target.write_text(json_text(result.document), encoding="utf-8")
    log = {
        "source": str(src),
        "output": str(target),
        "changes": [a.to_dict() for a in result.actions],
        "valid_after_repair": after.valid,
        "remaining_issues": [i.to_dict() for i in after.issues],
    }
    target.with_suffix(".repair.json").write_text(json_text(log), encoding="utf-8")
    return {"source": str(src), "output": str(target), "changes": len(result.actions),
            "valid_after_repair": after.valid}


@click.command("schema")
@click.option("--version", "version", default="v1.8", show_default=True, help="ATIF version (v1.0 .. v1.8).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to a file instead of stdout.")
def schema_cmd(version: str, output: str | None) -> None:
    """Print the JSON Schema (draft 2020-12) of an ATIF version, generated from the models.

    The schema checks shape (types, required and unknown keys); `atif validate`
    also checks the cross-field rules.

    \b
    Example:
      atif schema --version v1.8 > atif-v1.8.schema.json
    """
    from atif import json_schema

    try:
        schema = json_schema(version)
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    data = json_text(schema, sort_keys=True).encode()
    if output:
        Path(output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
