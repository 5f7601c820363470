"""``atif validate`` and ``atif schema``."""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Any

import click

from atif import VERSIONS, InputError, ValidationReport, json_schema, normalize_version, repair, validate
from atif.cli._common import emit_json, json_text


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
            found = sorted(str(f) for f in path.rglob("*.json") if f.is_file())
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
def validate_cmd(paths: tuple[str, ...], version: str | None, mode: str, fmt: str, repair: bool,
                 out_dir: str | None, quiet: bool) -> None:
    """Validate ATIF trajectory files: every error at once, each with a JSON pointer and a code.

    PATHS are files, directories (searched for *.json), globs, or - for stdin.
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
    reports = []
    for f in files:
        if f == "-":
            rep = validate(sys.stdin.buffer.read(), version, mode)
            rep.source = "<stdin>"
        else:
            rep = validate(f, version, mode)
        reports.append(rep)
    repaired = _write_repairs(reports, Path(out_dir)) if repair and out_dir else []

    n_invalid = sum(1 for r in reports if not r.valid) + len(missing)
    n_errors = sum(len(r.errors) for r in reports) + len(missing)
    n_warnings = sum(len(r.warnings) for r in reports)
    summary = {
        "files": len(reports) + len(missing),
        "valid": sum(1 for r in reports if r.valid),
        "invalid": n_invalid,
        "errors": n_errors,
        "warnings": n_warnings,
    }
    if fmt == "json":
        emit_json({
            "summary": summary,
            "files": [r.to_dict() for r in reports]
            + [{"source": m.split(": ")[0], "valid": False,
                "issues": [{"path": "", "code": "file.not-found", "severity": "error",
                            "message": m.split(": ", 1)[1]}]} for m in missing],
            "repaired": repaired,
        })
    else:
        for m in missing:
            click.echo(f"{m}", err=True)
        for r in reports:
            if r.valid and (quiet or not r.issues):
                if not quiet:
                    click.echo(f"{r.source}: valid ({r.version})")
                continue
            status = "valid" if r.valid else "INVALID"
            click.echo(f"{r.source}: {status} ({r.version or 'unknown version'}), "
                       f"{len(r.errors)} errors, {len(r.warnings)} warnings")
            for issue in r.issues:
                click.echo(f"  {issue.path or '/'}: {issue.severity} [{issue.code}] {issue.message}")
        for line in repaired:
            click.echo(f"repaired {line['source']} -> {line['output']} ({line['changes']} changes)")
        click.echo(
            f"{summary['files']} files, {summary['valid']} valid, {summary['invalid']} invalid, "
            f"{summary['errors']} errors, {summary['warnings']} warnings"
        )
    if n_invalid:
        sys.exit(1)


def _write_repairs(reports: list[ValidationReport], out_dir: Path) -> list[dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for r in reports:
        if not isinstance(r.document, dict):
            continue
        src = Path(r.source) if r.source and r.source != "<stdin>" else Path("stdin.json")
        target = out_dir / src.name
        if r.source and r.source != "<stdin>" and target.resolve() == src.resolve():
            raise click.UsageError(f"{src}: -o would overwrite the input; choose another folder")
        result = repair(r.document)
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
        done.append({"source": str(src), "output": str(target), "changes": len(result.actions),
                     "valid_after_repair": after.valid})
    return done


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
    try:
        schema = json_schema(version)
    except InputError as exc:
        raise click.UsageError(str(exc)) from None
    data = json_text(schema, sort_keys=True).encode()
    if output:
        Path(output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
