"""One JSON reading policy and one size limit: `validate` and `convert` agree on every input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from atif.cli import cli
from atif.schema.jsonio import load_json, max_file_bytes, read_file

GOOD = (b'{"schema_version": "ATIF-v1.8", "agent": {"name": "a", "version": "1"}, '
        b'"steps": [{"step_id": 1, "source": "user", "message": "hi"}, '
        b'{"step_id": 2, "source": "agent", "message": "hello"}]%s}')


def doc(tail: bytes) -> bytes:
    return GOOD % tail


# (case, bytes, valid, code that both commands print)
CASES = [
    ("nan cost", doc(b', "final_metrics": {"total_cost_usd": NaN}'), False, "json.non-finite"),
    ("infinity cost", doc(b', "final_metrics": {"total_cost_usd": Infinity}'), False, "json.non-finite"),
    ("minus infinity", doc(b', "extra": {"x": -Infinity}'), False, "json.non-finite"),
    ("overflowing literal", doc(b', "final_metrics": {"total_cost_usd": 1e400}'), False, "json.non-finite"),
    ("overflowing negative literal", doc(b', "extra": {"x": [0, -2.5E+309]}'), False, "json.non-finite"),
    ("lone surrogate", doc(b', "extra": {"x": "\\ud800"}'), False, "json.surrogate"),
    ("lone low surrogate", doc(b', "extra": {"x": "a\\udc00b"}'), False, "json.surrogate"),
    ("duplicate key", doc(b', "extra": {"x": 1, "x": 2}'), True, "json.duplicate-key"),
    ("invalid utf-8", doc(b', "extra": {"x": "\xff"}'), False, "json.encoding"),
    ("truncated", doc(b"")[:-5], False, "json.truncated"),
]


def _write(tmp_path: Path, data: bytes) -> Path:
    f = tmp_path / "in" / "t.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)
    return f


@pytest.mark.parametrize(("case", "data", "valid", "code"), CASES, ids=[c[0] for c in CASES])
def test_validate_and_convert_agree(tmp_path: Path, case: str, data: bytes, valid: bool, code: str) -> None:
    f = _write(tmp_path, data)
    runner = CliRunner()
    v = runner.invoke(cli, ["validate", str(f)])
    c = runner.invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out")])
    assert (v.exit_code, c.exit_code) == ((0, 0) if valid else (1, 1)), (v.output, c.output)
    assert f"[{code}]" in v.output and f"[{code}]" in c.output, (v.output, c.output)
    assert "Traceback" not in v.output + c.output
    # the message after the code is the same text in both commands
    v_msg = v.output.split(f"[{code}]", 1)[1].splitlines()[0].strip()
    c_msg = c.output.split(f"[{code}]", 1)[1].splitlines()[0].strip()
    assert v_msg == c_msg


def test_large_but_finite_numbers_and_exponent_like_text_are_read() -> None:
    data, issues = load_json(doc(b', "extra": {"x": 1e308, "y": -1.7E+300, "t": "e999 E+400"}'))
    assert issues == []
    assert data["extra"] == {"x": 1e308, "y": -1.7e300, "t": "e999 E+400"}


def test_an_overflowing_literal_names_its_json_pointer() -> None:
    data, issues = load_json(doc(b', "extra": {"a/b": [1, {"c": 1e999}]}'))
    assert data is None
    assert [(i.path, i.code) for i in issues] == [("/extra/a~1b/1/c", "json.non-finite")]


def test_duplicate_key_warning_names_the_key_and_its_path() -> None:
    data, issues = load_json(doc(b', "extra": {"a": {"k": 1, "k": 2, "k": 3}, "b": [{"z": 0, "z": 1}]}'))
    assert data["extra"] == {"a": {"k": 3}, "b": [{"z": 1}]}  # the last value is kept
    assert [(i.path, i.code, i.severity) for i in issues] == [
        ("/extra/a/k", "json.duplicate-key", "warning"),
        ("/extra/b/0/z", "json.duplicate-key", "warning"),
    ]
    assert "'k'" in issues[0].message


def test_big_integers_stay_exact_through_validate_and_convert(tmp_path: Path) -> None:
    big = 2**64 + 1
    f = _write(tmp_path, doc(b', "extra": {"n": %d}' % big))
    data, issues = load_json(f.read_bytes())
    assert issues == [] and data["extra"]["n"] == big and isinstance(data["extra"]["n"], int)
    runner = CliRunner()
    assert runner.invoke(cli, ["validate", str(f)]).exit_code == 0
    c = runner.invoke(cli, ["convert", str(f), "-o", str(tmp_path / "out")])
    assert c.exit_code == 0, c.output
    [written] = (tmp_path / "out" / "trajectories").rglob("*.json")
    assert str(big).encode() in written.read_bytes()


def test_one_size_limit_for_validate_and_convert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATIF_MAX_FILE_MB", "1")
    assert max_file_bytes() == 1024 * 1024
    pad = b"x" * (3 * 1024 * 1024 // 2)
    f = _write(tmp_path, doc(b', "extra": {"pad": "%s"}' % pad))
    data, issues = read_file(f)
    assert data is None and [i.code for i in issues] == ["file.too-large"]
    message = issues[0].message
    assert message == "2 MiB is over the 1 MiB limit (raise it with ATIF_MAX_FILE_MB)"
    runner = CliRunner()
    for args in (["validate", str(f)], ["convert", str(f), "-o", str(tmp_path / "out")],
                 ["convert", str(f.parent), "-o", str(tmp_path / "out")],
                 ["convert", str(f), "--from", "openai-chat", "-o", str(tmp_path / "out")]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 1, (args, r.output)
        assert f"[file.too-large] {message}" in r.output, (args, r.output)
        assert "no adapter recognises" not in r.output
    monkeypatch.setenv("ATIF_MAX_FILE_MB", "3")
    assert CliRunner().invoke(cli, ["validate", str(f)]).exit_code == 0


def test_the_same_bytes_parse_alike_in_the_library_entry_points(tmp_path: Path) -> None:
    from atif.adapters.jsonio import read_json
    from atif.errors import ParseError
    from atif.schema import validate

    f = _write(tmp_path, doc(b', "extra": {"x": NaN}'))
    with pytest.raises(ParseError, match=r"\[json.non-finite\]"):
        read_json(f)
    assert [i.code for i in validate(f).issues] == ["json.non-finite"]
    assert [i.code for i in validate(orjson.loads(doc(b"")) | {"extra": {"x": 1}}).issues] == []


def test_hex_ids_in_strings_do_not_send_the_document_to_the_overflow_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    import atif.schema.jsonio as jsonio

    walked: list[object] = []
    monkeypatch.setattr(jsonio, "_first_infinity", lambda value, pointer: walked.append(value))
    data, issues = load_json(doc(b', "extra": {"span": "span_4de452e6b438", "run": "01952a00-e123-7e456"}'))
    assert issues == [] and walked == []
    load_json(doc(b', "extra": {"x": [0,\n 2.5E+309]}'))
    assert len(walked) == 1  # a real three-digit exponent is still walked
