"""`atif validate` and `atif schema` from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from click.testing import CliRunner

from atif.cli import cli

GOOD = {"schema_version": "ATIF-v1.8", "agent": {"name": "a", "version": "1"},
        "steps": [{"step_id": 1, "source": "user", "message": "x"}]}


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_valid_invalid_and_summary(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_bytes(orjson.dumps(GOOD))
    bad = dict(GOOD, steps=[{"step_id": 2, "source": "user", "message": "x", "what": 1}])
    (tmp_path / "bad.json").write_bytes(orjson.dumps(bad))
    r = run("validate", str(tmp_path))
    assert r.exit_code == 1
    assert "/steps/0/step_id: error [step.id-sequence]" in r.output
    assert "/steps/0/what: error [schema.extra_forbidden]" in r.output
    assert r.output.strip().splitlines()[-1] == "2 files, 1 valid, 1 invalid, 2 errors, 0 warnings"
    assert run("validate", str(tmp_path / "good.json")).exit_code == 0


def test_json_format_and_stdin() -> None:
    r = run("validate", "-", "--format", "json", input=b"{broken")
    assert r.exit_code == 1
    data = orjson.loads(r.output)
    assert data["summary"]["invalid"] == 1
    assert data["files"][0]["issues"][0]["code"] == "json.syntax"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("validate", "x.json", "--version", "v9").exit_code == 2
    assert run("validate", "x.json", "--repair").exit_code == 2
    assert run("schema", "--version", "v2.0").exit_code == 2


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = run("validate", str(tmp_path / "empty"), str(tmp_path / "nope.json"))
    assert r.exit_code == 1
    assert "directory holds no .json file" in r.output and "no such file or directory" in r.output


def test_repair_writes_copies_and_logs(tmp_path: Path) -> None:
    src = tmp_path / "in" / "t.json"
    src.parent.mkdir()
    raw = orjson.dumps(dict(GOOD, steps=[{"step_id": 3, "source": "user", "message": "x"}]))
    src.write_bytes(raw)
    r = run("validate", str(src), "--repair", "-o", str(tmp_path / "out"))
    assert r.exit_code == 1  # the input itself is invalid
    assert src.read_bytes() == raw
    fixed = tmp_path / "out" / "t.json"
    assert run("validate", str(fixed)).exit_code == 0
    log = orjson.loads((tmp_path / "out" / "t.repair.json").read_bytes())
    assert log["changes"][0]["action"] == "renumber-step" and log["valid_after_repair"]
    assert run("validate", str(src), "--repair", "-o", str(src.parent)).exit_code == 2


def test_schema_command_prints_json_schema() -> None:
    r = run("schema", "--version", "v1.5")
    schema = orjson.loads(r.output)
    assert schema["properties"]["schema_version"]["const"] == "ATIF-v1.5"


def test_no_traceback_for_bad_input_and_help_is_fast(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(b"\x00\x01not json")
    p = subprocess.run([sys.executable, "-m", "atif.cli", "validate", str(f)], capture_output=True, text=True, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout
    code = "import sys, atif.cli; sys.argv=['atif','--help']\ntry: atif.cli.main()\nexcept SystemExit: pass\nprint('litellm' in sys.modules, 'duckdb' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip().endswith("False False")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import importlib

    import pytest

    from atif.cli._common import run

    v = importlib.import_module("atif.cli.validate")

    def boom(*args, **kwargs):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(v, "validate", boom)
    monkeypatch.setattr(v, "validate_files", boom)
    f = tmp_path / "t.json"
    f.write_bytes(orjson.dumps(GOOD))
    with pytest.raises(SystemExit) as exc:
        run(cli, ["validate", str(f)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "Error: RuntimeError: something broke (rerun with --debug for the traceback)\n"
    with pytest.raises(RuntimeError):
        run(cli, ["--debug", "validate", str(f)])


def test_a_folder_lists_the_json_files_rglob_finds_in_the_same_order(tmp_path: Path) -> None:
    from atif.cli.validate import _json_files

    root = tmp_path / "run"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "dir.json").mkdir()  # a folder named like a file: entered, not listed
    (root / "dir.json" / "in.json").write_text("{}")
    for rel in ("z.json", "a/1.json", "a/10.json", "a/2.json", "b/deep/x.json", ".hidden.json", "a/note.txt",
                "a/UPPER.JSON", "b/.json"):
        (root / rel).write_text("{}")
    (root / "a" / "link.json").symlink_to(root / "z.json")  # a link to a file: listed
    (root / "a" / "dangling.json").symlink_to(root / "missing.json")  # a link to nothing: not
    (root / "linked").symlink_to(root / "b", target_is_directory=True)  # a linked folder: not entered
    expected = sorted(str(f) for f in root.rglob("*.json") if f.is_file())
    assert sorted(_json_files(str(root))) == expected
    assert len(expected) == 9
