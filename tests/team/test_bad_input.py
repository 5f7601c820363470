"""Bad input on a team store: unreachable server, wrong credentials, unusable data path, newer catalog, endless conflicts."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from team_builders import converted

from atif.errors import StoreError
from atif.store import Store
from atif.store.txn import in_transaction


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgres_is_one_line_naming_host_and_port(team_db, tmp_path: Path) -> None:
    port = _closed_port()
    target = team_db.cluster.target(team_db.dbname, port=port)
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        Store(target, data_path=tmp_path / "lake")
    assert time.monotonic() - started < 15
    msg = str(err.value)
    assert "\n" not in msg
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in msg
    assert "atif-test-pw" not in msg and "password=***" in msg


def test_wrong_credentials_are_named(team_db, tmp_path: Path) -> None:
    target = team_db.cluster.target(team_db.dbname, password="wrong")
    with pytest.raises(StoreError) as err:
        Store(target, data_path=tmp_path / "lake")
    msg = str(err.value)
    assert "\n" not in msg
    assert "refused the credentials" in msg and "password authentication failed" in msg
    assert "wrong" not in msg


def test_a_data_path_that_is_not_writable(team_db, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"the data path .*a-file/lake is not writable"):
        Store(team_db.target, data_path=blocker / "lake")


def test_a_missing_data_path_is_asked_for(team_db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATIF_DATA_PATH", raising=False)
    with pytest.raises(StoreError, match="needs a data path"):
        Store(team_db.target)


def test_a_catalog_written_by_a_newer_atif_is_refused(team_db) -> None:
    with Store(team_db.target, data_path=team_db.data_path) as store:
        store._write(lambda: store.connection.execute("INSERT INTO _atif_migrations (id, name) VALUES (99, 'm099')"),
                     "test")
    with pytest.raises(StoreError, match="written by a newer atif; upgrade atif"):
        Store(team_db.target, data_path=team_db.data_path)


def test_a_commit_that_keeps_conflicting_gives_up_with_nothing_written(team_db) -> None:
    with Store(team_db.target, data_path=team_db.data_path) as store, \
            Store(team_db.target, data_path=team_db.data_path) as rival:
        store.ingest(converted("t", 0, 1), "exp", create_missing_tasks=True)
        tries = []

        def write() -> None:
            tries.append(1)
            store.connection.execute("INSERT INTO collections (name) VALUES ('half-written')")
            # Another writer commits in between, every time: this commit always conflicts.
            rival._write(lambda: None, "rival")

        with pytest.raises(StoreError, match=r"kept conflicting with other writers \(4 attempts\); nothing of it"):
            in_transaction(store.connection, write, team=True, what="test write", attempts=4)
        assert len(tries) == 4
        assert store.read_one("SELECT count(*) FROM collections WHERE name = 'half-written'") == (0,)
        assert rival.read_one("SELECT count(*) FROM collections WHERE name = 'half-written'") == (0,)


def test_a_conflict_once_is_retried_and_committed(team_db) -> None:
    with Store(team_db.target, data_path=team_db.data_path) as store, \
            Store(team_db.target, data_path=team_db.data_path) as rival:
        tries = []

        def write() -> None:
            tries.append(1)
            store.connection.execute("INSERT INTO collections (name) VALUES ('once')")
            if len(tries) == 1:
                rival._write(lambda: None, "rival")

        in_transaction(store.connection, write, team=True, what="test write")
        assert len(tries) == 2
        assert rival.read_one("SELECT count(*) FROM collections WHERE name = 'once'") == (1,)


def test_a_duckdb_without_matching_extensions_names_the_versions(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    pytest.importorskip("duckdb_extension_ducklake")
    import duckdb

    monkeypatch.setattr(duckdb, "__version__", "9.9.9")
    with pytest.raises(StoreError) as err:
        Store("ducklake:postgres:dbname=x host=127.0.0.1", data_path=tmp_path / "lake")
    msg = str(err.value)
    assert "\n" not in msg
    assert "needs DuckDB 1.5.5" in msg and "this is DuckDB 9.9.9" in msg and "atif[team]" in msg


def test_reading_a_database_that_holds_no_store_says_so(team_db) -> None:
    with pytest.raises(StoreError) as err:
        Store.open(team_db.target, read_only=True, data_path=team_db.data_path)
    msg = str(err.value)
    assert "is not an atif store yet; open it for writing first" in msg
    assert "atif-test-pw" not in msg and "\n" not in msg
