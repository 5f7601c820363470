"""Validating many files: the same reports, in the same order, whatever the number of workers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from atif import validate, validate_files
from atif.cli import cli
from atif.schema.jsonio import load_json
from atif.schema.parallel import map_ordered, worker_count

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"


def _corpus(tmp_path: Path) -> list[str]:
    """Every conformance case (valid and broken) as a file, plus bytes that are not JSON at all."""
    out = tmp_path / "docs"
    out.mkdir()
    files = []
    for n, line in enumerate((FIXTURES / "conformance" / "cases.jsonl").read_bytes().splitlines()):
        f = out / f"case-{n:04d}.json"
        f.write_bytes(orjson.dumps(orjson.loads(line)["doc"]))
        files.append(str(f))
    (out / "zz-broken.json").write_bytes(b'{"schema_version": "ATIF-v1.8", "steps": [')
    (out / "zz-dup.json").write_bytes(b'{"schema_version": "ATIF-v1.8", "schema_version": "ATIF-v1.8", "steps": []}')
    (out / "zz-overflow.json").write_bytes(b'{"schema_version": "ATIF-v1.8", "steps": [], "extra": {"x": [1, 2e400]}}')
    files += [str(out / n) for n in ("zz-broken.json", "zz-dup.json", "zz-overflow.json")]
    return files


def _key(r: object) -> tuple[object, ...]:
    return (r.source, r.version, r.valid, [i.to_dict() for i in r.issues])  # type: ignore[attr-defined]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batch_reports_equal_one_by_one_in_input_order(tmp_path: Path, workers: int) -> None:
    files = _corpus(tmp_path)
    expected = [_key(validate(f)) for f in files]
    got = list(validate_files(files, workers=workers))
    assert [_key(r) for r in got] == expected
    assert all(r.document is None for r in got)  # nothing of a document is kept
    assert sum(1 for r in got if not r.valid) > 100  # the corpus really has broken files


def test_keep_documents_gives_the_parsed_document(tmp_path: Path) -> None:
    files = _corpus(tmp_path)[:3]
    docs = [r.document for r in validate_files(files, keep_documents=True)]
    assert docs == [orjson.loads(Path(f).read_bytes()) for f in files]


def _old_text(files: list[str]) -> str:
    """What `atif validate` printed before it streamed: every report, then the summary."""
    reports = [validate(f) for f in files]
    lines = []
    for r in reports:
        if r.valid and not r.issues:
            lines.append(f"{r.source}: valid ({r.version})")
            continue
        lines.append(f"{r.source}: {'valid' if r.valid else 'INVALID'} ({r.version or 'unknown version'}), "
                     f"{len(r.errors)} errors, {len(r.warnings)} warnings")
        lines += [f"  {i.path or '/'}: {i.severity} [{i.code}] {i.message}" for i in r.issues]
    lines.append(f"{len(reports)} files, {sum(r.valid for r in reports)} valid, "
                 f"{sum(not r.valid for r in reports)} invalid, {sum(len(r.errors) for r in reports)} errors, "
                 f"{sum(len(r.warnings) for r in reports)} warnings")
    return "\n".join(lines) + "\n"


def test_cli_output_is_the_same_with_and_without_workers(tmp_path: Path) -> None:
    files = sorted(str(Path(f).relative_to(tmp_path)) for f in _corpus(tmp_path))
    runner = CliRunner()
    outputs = {}
    for fmt in ("text", "json"):
        one = runner.invoke(cli, ["validate", "docs", "--format", fmt, "--workers", "1"], catch_exceptions=False)
        two = runner.invoke(cli, ["validate", "docs", "--format", fmt, "--workers", "2"], catch_exceptions=False)
        assert one.exit_code == two.exit_code == 1
        assert one.output == two.output
        outputs[fmt] = one.output
    assert outputs["text"] == _old_text(files)
    data = orjson.loads(outputs["json"])
    assert [f["source"] for f in data["files"]] == files
    assert data["files"] == [validate(f).to_dict() for f in files]


def test_map_ordered_keeps_order_and_bounds_the_work_in_flight() -> None:
    assert list(map_ordered(abs, range(-500, 0), 2, chunk_size=7, ahead=2)) == list(range(500, 0, -1))
    assert list(map_ordered(abs, [], 2)) == []


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATIF_WORKERS", raising=False)
    assert worker_count(10) == 1  # too few items to pay for a process
    assert worker_count(10, 3) == 3  # asked for
    monkeypatch.setenv("ATIF_WORKERS", "2")
    assert worker_count(10) == 2


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"a": 1e400}', "/a"),
        (b'{"a":\n  -2.5E+309}', "/a"),
        (b'[0, 1.0e0400]', "/1"),
        (b"1E400", ""),
        (b'{"a": "text 1e400 and 10E+999"}', None),  # inside a string: just text
        (b'{"a": "x", "b": 1e300, "c": "0e0000"}', None),  # a big but finite number
        (b'{"a": 1e-400}', None),  # underflows to 0.0, which is a number
        (b'{"a": [1' + b"0" * 400 + b'.5]}', "/a/0"),  # no exponent, 401 digits before the point
        (b'{"a": 9' + b"9" * 249 + b"e99}", "/a"),  # a two-digit exponent on a 250-digit integer part
        (b'{"a": 1' + b"0" * 400 + b"}", None),  # an integer: kept exact, never a float
        (b'{"a": "' + b"7" * 400 + b'"}', None),  # digits inside a string
    ],
)
def test_overflowing_literals_are_found_wherever_they_are(data: bytes, where: str | None) -> None:
    doc, issues = load_json(data)
    if where is None:
        assert issues == [] and doc is not None
    else:
        assert doc is None and [(i.path, i.code) for i in issues] == [(where, "json.non-finite")]
