"""``copy_store`` / ``atif store copy`` between two DuckDB files: everything once, bytes as stored."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from store_builders import CRITERIA, basic_trials, write_run

from atif import upload
from atif.cli import cli
from atif.store import VIEWS, Store, copy_store


def _filled(path: Path, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", basic_trials(4))
    with Store(path) as store:
        upload([run], "exp", criteria=CRITERIA, store=store)
        trial_id = store.read("SELECT trial_id FROM trials ORDER BY trial_id LIMIT 1")[0]["trial_id"]
        store.save_ratings(
            [{"trial_id": trial_id, "criterion": "complete", "verdict": "YES", "source": "judge", "cache_key": "k1"}],
            cache=[{"cache_key": "k1", "verdict": "YES", "model": "m"}],
        )


def _snapshot(store: Store) -> dict[str, list[tuple]]:
    out = {}
    for view in VIEWS:
        cols, rows = store.query(f"SELECT * FROM {view}")
        keep = [i for i, c in enumerate(cols) if c != "created_at"]
        out[view] = sorted(tuple(str(r[i]) for i in keep) for r in rows)
    return out


def test_copy_moves_everything_once(tmp_path: Path) -> None:
    _filled(tmp_path / "a.duckdb", tmp_path)
    with Store(tmp_path / "a.duckdb", read_only=True) as a, Store(tmp_path / "b.duckdb") as b:
        counts = copy_store(a, b)
        assert counts["trial_data"] == 4 and counts["rating_data"] == 1 and counts["judge_cache"] == 1
        assert _snapshot(a) == _snapshot(b)
        for row in a.read("SELECT trajectory_id FROM trajectory_data"):
            assert a.trajectory_bytes(row["trajectory_id"]) == b.trajectory_bytes(row["trajectory_id"])
        ids = [r["trial_id"] for r in a.read("SELECT trial_id FROM trials")]
        assert {k: v["trajectory_bytes"] for k, v in a.trials_by_id(ids).items()} == \
            {k: v["trajectory_bytes"] for k, v in b.trials_by_id(ids).items()}
        assert b.cache_get("k1")["verdict"] == "YES"
        assert set(copy_store(a, b).values()) == {0}
        assert _snapshot(a) == _snapshot(b)


def test_cli_store_copy_twice(tmp_path: Path) -> None:
    _filled(tmp_path / "a.duckdb", tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["store", "copy", str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")])
    assert first.exit_code == 0, first.output
    assert "trial_data       4" in first.output
    second = runner.invoke(cli, ["store", "copy", str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")])
    assert second.exit_code == 0, second.output
    assert "copied 0 rows" in second.output and "had everything already" in second.output


def test_copy_into_itself_is_refused(tmp_path: Path) -> None:
    _filled(tmp_path / "a.duckdb", tmp_path)
    result = CliRunner().invoke(cli, ["store", "copy", str(tmp_path / "a.duckdb"), str(tmp_path / "a.duckdb")])
    assert result.exit_code != 0
