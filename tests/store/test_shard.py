"""Shards of the pending pairs (``atif evaluate --shard I/N``): a partition, the same for every process."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from store_builders import CRITERIA, basic_trials, write_run

from atif import upload
from atif.cli import cli
from atif.errors import StoreError
from atif.store import Store


def test_shards_partition_the_pending_pairs(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", basic_trials(12))
    with Store(tmp_path / "s.duckdb") as store:
        upload([run], "exp", criteria=CRITERIA, store=store)
        everything = [(p.trial_id, p.criterion) for p in store.pending("exp")]
        parts = [[(p.trial_id, p.criterion) for p in store.pending("exp", shard=(i, 3))] for i in (1, 2, 3)]
    assert sorted(pair for part in parts for pair in part) == sorted(everything) and len(everything) == 24
    assert all(parts)
    with Store(tmp_path / "s.duckdb", shard=(2, 3)) as store:
        assert [(p.trial_id, p.criterion) for p in store.pending("exp")] == parts[1]


@pytest.mark.parametrize("shard", [(0, 3), (4, 3), (1, 0)])
def test_a_shard_outside_its_range_is_refused(tmp_path: Path, shard: tuple[int, int]) -> None:
    with pytest.raises(StoreError, match="a shard is i/n with 1 <= i <= n"):
        Store(tmp_path / "s.duckdb", shard=shard)


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "x"], "is not I/N"),
    (["--shard", "4/3"], "needs 1 <= I <= N"),
])
def test_bad_shard_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["evaluate", "-e", "exp", *args])
    assert result.exit_code == 2 and message in result.output
