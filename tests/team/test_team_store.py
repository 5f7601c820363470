"""The team store on real DuckLake over a real PostgreSQL: opening, schema, idempotent uploads, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from team_builders import converted, trial_bytes

from atif.errors import StoreError
from atif.store import Store


def test_upload_is_idempotent_and_reads_back_the_bytes(team_db) -> None:
    with Store(team_db.target, data_path=team_db.data_path) as store:
        assert store.team
        first = store.ingest(converted("t", 0, 30), "exp", create_missing_tasks=True, batch_size=7)
        again = store.ingest(converted("t", 0, 30), "exp", create_missing_tasks=True, batch_size=7)
        assert (first.created_trials, first.unchanged_trials, first.errors) == (30, 0, [])
        assert (again.created_trials, again.unchanged_trials, again.errors) == (0, 30, [])
        rows = store.read("SELECT trial_id, trajectory_id, source_trial_id FROM trials ORDER BY source_trial_id")
        assert len(rows) == 30
        by_id = store.trials_by_id([r["trial_id"] for r in rows])
        for r in rows:
            i = int(r["source_trial_id"].rsplit("-", 1)[1])
            assert by_id[r["trial_id"]]["trajectory_bytes"] == trial_bytes("t", i)
    # Parquet files on the data path, the catalog in PostgreSQL.
    assert list(team_db.data_path.rglob("*.parquet"))


def test_schema_matches_the_file_store_and_migrations_are_recorded(team_db, tmp_path: Path) -> None:
    with Store(tmp_path / "f.duckdb") as f, Store(team_db.target, data_path=team_db.data_path) as t:
        q = ("SELECT table_name, column_name, data_type FROM information_schema.columns "
             "WHERE table_catalog = current_database() ORDER BY table_name, ordinal_position")
        file_cols = [r for r in f.read(q) if r["table_name"] != "_atif_lock"]
        team_cols = [r for r in t.read(q) if r["table_name"] != "_atif_lock"]
        assert file_cols == team_cols
        assert f.read("SELECT id, name FROM _atif_migrations ORDER BY id") == \
            t.read("SELECT id, name FROM _atif_migrations ORDER BY id")


def test_a_second_opening_finds_the_schema(team_db) -> None:
    with Store(team_db.target, data_path=team_db.data_path) as store:
        store.ingest(converted("t", 0, 3), "exp", create_missing_tasks=True)
    with Store.open(team_db.target, read_only=True, data_path=team_db.data_path) as store:
        assert store.read_one("SELECT count(*) FROM trials") == (3,)
        with pytest.raises(StoreError, match="read-only"):
            store.ingest(converted("t", 3, 4), "exp", create_missing_tasks=True)


def test_user_sql_is_read_only_on_a_team_store(team_db) -> None:
    with Store(team_db.target, data_path=team_db.data_path) as store:
        store.ingest(converted("t", 0, 2), "exp", create_missing_tasks=True)
        assert store.query("SELECT count(*) FROM trials")[1] == [(2,)]
        for sql in ("DELETE FROM trial_data", "COPY (SELECT 1) TO '/tmp/x.csv'", "SELECT * FROM read_csv('/etc/passwd')",
                    "ATTACH 'ducklake:postgres:dbname=x' AS y"):
            with pytest.raises(StoreError):
                store.query(sql)
        assert store.query("SELECT count(*) FROM trials")[1] == [(2,)]
