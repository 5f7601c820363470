"""compare's bounded lists, and every pair streamed: the library iterator and `atif compare --all-pairs`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from compare_store import make

from atif.cli import cli
from atif.cli._common import json_text
from atif.report import DEFAULT_MAX_LISTED, compare, iter_compare_lists
from atif.store import Store


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("listing") / "compare.duckdb"
    make(path)
    return path


def test_the_lists_are_bounded_by_default_with_their_totals(varied: Path) -> None:
    with Store.open(varied, read_only=True) as store:
        full = compare(store, "bench-a", "bench-b", max_listed=None)
        short = compare(store, "bench-a", "bench-b")
        tiny = compare(store, "bench-a", "bench-b", max_listed=2)
    assert full["task_counts"]["improved"] > DEFAULT_MAX_LISTED and full["task_counts"]["regressed"] > DEFAULT_MAX_LISTED
    for kind, items in full["tasks"].items():
        assert len(items) == full["task_counts"][kind] > 2
        assert short["tasks"][kind] == items[:DEFAULT_MAX_LISTED] and tiny["tasks"][kind] == items[:2]
    for side, items in full["unpaired"].items():
        assert len(items) == full["unpaired_counts"][side] > 2
        assert len(short["unpaired"][side]) == min(len(items), DEFAULT_MAX_LISTED)
        assert short["unpaired"][side] == items[:DEFAULT_MAX_LISTED] and tiny["unpaired"][side] == items[:2]
    strip = ("tasks", "unpaired")
    assert {k: v for k, v in short.items() if k not in strip} == {k: v for k, v in full.items() if k not in strip}


def test_iter_compare_lists_yields_every_listed_entry_in_order(varied: Path) -> None:
    with Store.open(varied, read_only=True) as store:
        full = compare(store, "bench-a", "bench-b", max_listed=None)
        streamed: dict[str, dict[str, list]] = {"tasks": {}, "unpaired": {}}
        for section, kind, entry in iter_compare_lists(store, "bench-a", "bench-b", batch=97):
            streamed[section].setdefault(kind, []).append(entry)
    assert streamed["tasks"] == full["tasks"] and streamed["unpaired"] == full["unpaired"]


def test_all_pairs_json_is_the_full_result_written_as_it_is_read(varied: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    res = CliRunner().invoke(cli, ["compare", "bench-a", "bench-b", "--format", "json", "--all-pairs", "--seed", "3",
                                   "-o", str(out), "--db", str(varied)])
    assert res.exit_code == 0, res.output
    with Store.open(varied, read_only=True) as store:
        expected = json_text(compare(store, "bench-a", "bench-b", seed=3, max_listed=None), sort_keys=True)
    assert out.read_text() == expected
    res = CliRunner().invoke(cli, ["compare", "bench-a", "bench-b", "--format", "json", "--max-listed", "1",
                                   "--db", str(varied)])
    data = json.loads(res.output)
    assert all(len(v) == 1 for v in data["tasks"].values()) and data["task_counts"]["improved"] > 1


def test_all_pairs_needs_json(varied: Path) -> None:
    res = CliRunner().invoke(cli, ["compare", "bench-a", "bench-b", "--all-pairs", "--db", str(varied)])
    assert res.exit_code == 2 and "--format json" in res.output
