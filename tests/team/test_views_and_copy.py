"""The same uploads give the same rows in every view on a file store and a team store; copying between them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from team_builders import CRITERIA, basic_trials, converted, write_run

from atif import upload
from atif.cli import cli
from atif.store import VIEWS, Store, copy_store

HARBOR = Path(__file__).resolve().parents[2] / "fixtures" / "harbor" / "jobs"


def _fill(store: Store, tmp_path: Path) -> None:
    upload([HARBOR], "harbor", store=store)
    run = write_run(tmp_path / "run", basic_trials(6))
    upload([run], "exp", criteria=CRITERIA, store=store)
    store.ingest(converted("mem", 0, 20), "mem", create_missing_tasks=True, batch_size=6)
    ids = [r["trial_id"] for r in store.read("SELECT trial_id FROM trials WHERE experiment = 'exp' ORDER BY trial_id")]
    store.save_ratings(
        [{"trial_id": t, "criterion": "complete", "verdict": v, "source": "judge", "judge_model": "m",
          "prompt_tokens": 10, "cost_usd": 0.01, "cache_key": f"k{n}"} for n, (t, v) in
         enumerate(zip(ids, ["YES", "NO", "UNSCORED", "YES"], strict=False))]
        + [{"trial_id": ids[0], "criterion": "safe", "verdict": "NO", "source": "human"}],
        cache=[{"cache_key": "k0", "verdict": "YES", "model": "m"}],
    )
    # A human label over a judge verdict: the judge's goes to replaced_ratings.
    store.save_ratings([{"trial_id": ids[1], "criterion": "complete", "verdict": "YES", "source": "human"}])


def _views(store: Store) -> dict[str, list[tuple[str, ...]]]:
    out = {}
    for view in VIEWS:
        cols, rows = store.query(f"SELECT * FROM {view}")
        keep = [i for i, c in enumerate(cols) if c not in ("created_at", "replaced_at")]
        out[view] = sorted(tuple(str(r[i]) for i in keep) for r in rows)
    return out


def test_every_view_returns_the_same_rows_on_both_stores(team_db, tmp_path: Path) -> None:
    with Store(tmp_path / "f.duckdb") as f, Store(team_db.target, data_path=team_db.data_path) as t:
        _fill(f, tmp_path)
        _fill(t, tmp_path)
        file_views, team_views = _views(f), _views(t)
        for view in VIEWS:
            assert file_views[view], view
            assert file_views[view] == team_views[view], view


def test_copy_a_file_into_a_team_store_and_back(team_db, tmp_path: Path) -> None:
    with Store(tmp_path / "a.duckdb") as a:
        _fill(a, tmp_path)
    runner = CliRunner()
    args = ["store", "copy", str(tmp_path / "a.duckdb"), team_db.target, "--data-path", str(team_db.data_path)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "copied 0 rows" in again.output, again.output
    back = runner.invoke(cli, ["store", "copy", team_db.target, str(tmp_path / "b.duckdb"),
                               "--data-path", str(team_db.data_path)])
    assert back.exit_code == 0, back.output
    with Store(tmp_path / "a.duckdb", read_only=True) as a, \
            Store(team_db.target, read_only=True, data_path=team_db.data_path) as t, \
            Store(tmp_path / "b.duckdb") as b:
        assert _views(a) == _views(t) == _views(b)
        ids = [r["trial_id"] for r in a.read("SELECT trial_id FROM trials")]
        raw = {k: v["trajectory_bytes"] for k, v in a.trials_by_id(ids).items()}
        assert raw == {k: v["trajectory_bytes"] for k, v in t.trials_by_id(ids).items()}
        assert raw == {k: v["trajectory_bytes"] for k, v in b.trials_by_id(ids).items()}
        assert t.cache_get("k0") is not None and b.cache_get("k0") is not None
        assert set(copy_store(t, b).values()) == {0}


def test_every_command_works_on_a_team_store(team_db, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ATIF_DB", team_db.target)
    monkeypatch.setenv("ATIF_DATA_PATH", str(team_db.data_path))
    runner = CliRunner()
    run = write_run(tmp_path / "run", basic_trials(4))
    ok = [
        ["upload", str(run), "-e", "exp"],
        ["upload", str(run), "-e", "exp2"],
        ["experiments"],
        ["trials", "-e", "exp"],
        ["query", "SELECT count(*) AS n FROM trials"],
        ["report", "-e", "exp"],
        ["compare", "exp", "exp2"],
        ["export", "-e", "exp", "--kind", "views", "--format", "parquet", "-o", str(tmp_path / "out")],
    ]
    for args in ok:
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    again = runner.invoke(cli, ["upload", str(run), "-e", "exp", "--format", "json"])
    assert '"unchanged_trials": 4' in again.output
