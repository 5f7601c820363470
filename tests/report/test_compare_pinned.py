"""compare and gate give exactly the pinned figures on a varied store (same seed, same results).

``data/compare_golden.json`` was written by ``compare_store.py`` (see its docstring); any change
to pairing, verdict counting, bootstrap or the listing of changed pairs shows here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_store import GOLDEN, make, results


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pinned") / "compare.duckdb"
    make(path)
    return path


def test_compare_and_gate_match_the_pinned_results(varied: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(results(varied), sort_keys=True))
    assert got.keys() == golden.keys()
    for key in golden:
        if key.startswith("compare"):  # the totals of unpaired trials came later; they match the pinned lists
            assert got[key].pop("unpaired_counts") == {k: v["n"] for k, v in golden[key]["unpaired"].items()}
        assert got[key] == golden[key], key


def test_the_varied_store_has_every_pairing_case(varied: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    c = golden["compare_seed0"]
    assert c["unpaired"]["baseline_only"]["n"] > 0 and c["unpaired"]["candidate_only"]["n"] > 0
    assert all(c["task_counts"][k] > 0 for k in ("regressed", "improved", "mixed"))
    assert c["criteria"]["only-b"]["excluded_missing"] > 0
    assert {m["interval"] for m in c["metrics"].values()} == {"bootstrap"}
