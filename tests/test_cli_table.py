"""``atif query``'s table prints values as they are: rich markup and emoji codes in data stay text."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from atif.cli import cli
from atif.store import Store


def test_table_prints_markup_and_emoji_codes_verbatim(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    Store.open(str(db)).close()
    sql = "select '[bold]x' as a, ':smile: [red]y' as \"[b]h\", 42 as n, NULL as z"
    result = CliRunner().invoke(cli, ["query", sql, "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "[b]h" in lines[1] and "┃ n " in lines[1]
    assert "│ [bold]x │ :smile: [red]y │ 42 │   │" in lines[3]
