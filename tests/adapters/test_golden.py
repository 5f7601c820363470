"""Golden conversions: every ``fixtures/**/<case>.atif.json`` against what ``convert`` makes of its input.

The convention is documented in ``fixtures/README.md``. Run this file as a script with an
input path to print the candidate expected file for review (nothing is written).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
INPUT_EXTENSIONS = {"json", "jsonl", "ndjson", "eval", "yaml", "yml", "txt", "traj", "traj.json"}


def _source_dir(path: Path) -> Path:
    rel = path.resolve().relative_to(FIXTURES)
    return FIXTURES / rel.parts[0]


def _case_input(expected: Path) -> Path:
    case = expected.name.removesuffix(".atif.json")
    found = [
        p
        for p in expected.parent.iterdir()
        if (p.name == case and p.is_dir())
        or (p.name.startswith(case + ".") and p.name[len(case) + 1:] in INPUT_EXTENSIONS)
    ]
    if len(found) != 1:
        raise AssertionError(f"{expected}: expected one raw input named {case}[.<ext>], found {found}")
    return found[0]


def _options(expected: Path) -> dict[str, Any]:
    case = expected.name.removesuffix(".atif.json")
    opts: dict[str, Any] = {}
    mapping = expected.parent / f"{case}.mapping.yaml"
    if mapping.is_file():
        opts = {"from": "mapping", "mapping": mapping.name}
    options = expected.parent / f"{case}.options.json"
    if options.is_file():
        opts.update(json.loads(options.read_text()))
    return opts


def _cases() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.atif.json") if p.is_file())


def run_case(raw: Path, opts: dict[str, Any], out: Path) -> tuple[Any, Any, bytes]:
    """Convert one case from inside its source folder; return (result, expected-shaped trajectories, trials bytes)."""
    from atif.adapters.convert import convert

    src_dir = _source_dir(raw)
    cwd = os.getcwd()
    os.chdir(src_dir)
    try:
        mapping = opts.get("mapping")
        if mapping:
            mapping = str((raw.parent / mapping).relative_to(src_dir))
        result = convert(
            [str(raw.relative_to(src_dir))],
            out,
            source_format=opts.get("from", "auto"),
            mapping=mapping,
        )
    finally:
        os.chdir(cwd)
    docs = {
        p.relative_to(out).as_posix(): json.loads(p.read_bytes())
        for p in result.outputs
        if p.relative_to(out).parts[0] == "trajectories"
    }
    shaped: Any = next(iter(docs.values())) if len(docs) == 1 else dict(sorted(docs.items()))
    return result, shaped, (out / "trials.jsonl").read_bytes()


@pytest.mark.parametrize("expected", _cases(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_golden(expected: Path, tmp_path: Path) -> None:
    from atif.schema.validate import validate

    raw = _case_input(expected)
    opts = _options(expected)
    result, actual, trials = run_case(raw, opts, tmp_path / "out")

    assert len(result.failures) == opts.get("failures", 0), result.failures
    want = json.loads(expected.read_bytes())
    assert actual == want

    docs = [want] if "schema_version" in want else list(want.values())
    for doc in docs:
        report = validate(doc, mode="strict")
        assert report.valid, [str(i) for i in report.errors]

    trials_file = expected.parent / (expected.name.removesuffix(".atif.json") + ".trials.jsonl")
    if trials_file.is_file():
        assert trials == trials_file.read_bytes()


def test_expected_trajectories_pass_harbors_own_model() -> None:
    trajectories = pytest.importorskip("harbor.models.trajectories")
    for expected in _cases():
        want = json.loads(expected.read_bytes())
        for doc in [want] if "schema_version" in want else list(want.values()):
            trajectories.Trajectory.model_validate(doc)


def test_every_case_has_its_input() -> None:
    for expected in _cases():
        _case_input(expected)


if __name__ == "__main__":  # print the candidate expected file of one input, for review
    from atif.adapters.jsonio import dump_json

    target = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        probe = target.parent / (target.name.split(".")[0] + ".atif.json")
        res, shaped, trials_bytes = run_case(target, _options(probe), Path(tmp) / "out")
        for s, r in res.failures:
            print(f"failed: {s}: {r}", file=sys.stderr)
        sys.stdout.write(dump_json(shaped).decode())
        if len(sys.argv) > 2:
            Path(sys.argv[2]).write_bytes(trials_bytes)
