"""``atif criteria list|show``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from atif.cli import cli
from atif.cli._common import run


def test_list_json_is_name_kind_description() -> None:
    r = CliRunner().invoke(cli, ["criteria", "list", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert all(set(row) == {"name", "kind", "description"} for row in rows)
    names = [row["name"] for row in rows]
    assert {"tool-errors", "no-loops", "honest-success", "task-completed", "no-reward-hacking"} <= set(names)
    assert rows[0]["kind"] == "function" and rows[-1]["kind"] == "llm"


def test_list_text_has_one_line_each() -> None:
    r = CliRunner().invoke(cli, ["criteria", "list"])
    assert r.exit_code == 0
    assert len(r.output.strip().splitlines()) == 14
    assert any(line.startswith("no-loops ") and "function" in line for line in r.output.splitlines())


def test_show_explains_question_heuristics_and_failure_modes() -> None:
    r = CliRunner().invoke(cli, ["criteria", "show", "honest-success"])
    assert r.exit_code == 0
    assert "Question: If the agent claimed success" in r.output
    assert "How it decides:" in r.output and "pytest" in r.output
    assert "Known failure modes:" in r.output
    assert "- use: honest-success" in r.output


def test_show_unknown_name_is_one_line_naming_the_close_ones(capsys: object) -> None:
    with pytest.raises(SystemExit) as exited:
        run(cli, ["criteria", "show", "no-loop"])
    assert exited.value.code == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.strip() == ("Error: no built-in criterion 'no-loop'; did you mean no-loops? "
                           "(`atif criteria list` shows them all)")
