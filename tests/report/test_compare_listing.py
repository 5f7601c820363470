"""compare's bounded lists, and every pair streamed: the library iterator and `atif compare --all-pairs`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from compare_store import make
from report_builders import StoreBuilder

from atif.cli import cli
from atif.cli._common import json_text
from atif.report import DEFAULT_MAX_LISTED, compare, gate, iter_compare_lists
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


def test_compare_and_gate_without_any_rating(builder: StoreBuilder) -> None:
    for i in range(3):
        builder.trial("a", f"t{i}", reward=0.5)
        builder.trial("b", f"t{i}", reward=0.5 + 0.1 * i)
    builder.trial("b", "t0", source_id="again", reward=0.5)  # a second trial of t0, epoch 1: unpaired
    store = builder.store()
    r = compare(store, "a", "b")
    assert r["n_pairs"] == 3 and r["criteria"] == {} and r["unpaired_counts"] == {"baseline_only": 0,
                                                                                   "candidate_only": 1}
    assert [t["task_name"] for t in r["tasks"]["improved"]] == ["t1", "t2"]
    g = gate(store, "b", baseline="a")
    assert [c.name for c in g.conditions] == ["no regression of mean reward vs a beyond 0.05 (alpha 0.05)"]


def test_more_criteria_than_one_word_holds(builder: StoreBuilder) -> None:
    labels = [f"c{i:02d}" for i in range(70)]  # three words of 32 criteria
    for i in range(4):
        builder.trial("a", f"t{i}", reward=1.0, ratings=dict.fromkeys(labels, "YES"))
        builder.trial("b", f"t{i}", reward=1.0,
                      ratings={label: "NO" if j % 7 == i else "YES" for j, label in enumerate(labels)})
    r = compare(builder.store(), "a", "b")
    assert sorted(r["criteria"]) == labels
    lost = {label for t in r["tasks"]["regressed"] for label in t["lost"]}
    assert lost == {label for j, label in enumerate(labels) if j % 7 < 4}
    assert r["criteria"]["c64"]["regressed"] == 1 and r["criteria"]["c69"]["regressed"] == 0
    assert all(t["gained"] == [] for t in r["tasks"]["regressed"])


def test_markdown_gives_the_totals_of_bounded_lists(varied: Path) -> None:
    from atif.report import render_compare_md

    with Store.open(varied, read_only=True) as store:
        r = compare(store, "bench-a", "bench-b", max_listed=30)
    md = render_compare_md(r)
    n_base = r["unpaired_counts"]["baseline_only"]
    assert n_base > 30 and f"{n_base:,} baseline-only" in md
    assert f"Unpaired, baseline only ({n_base:,})" in md and f"… and {n_base - 30:,} more" in md
