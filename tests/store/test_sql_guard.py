"""User SQL cannot write, reach files or the network, load extensions or change the configuration.

Every attempt runs four ways: through ``Store.query`` on a read-write and on a read-only store,
and straight into the guarded connection without the statement check (``run_statements``), to
show that the connection's own lockdown holds where the check would miss something.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from store_builders import basic_trials, write_run

from atif import upload
from atif.errors import StoreError
from atif.store import Store
from atif.store.sql import run_statements

V = "victim.txt"
ATTACKS = [
    # EXPLAIN ANALYZE runs the statement it explains
    f"explain analyze copy (select 'x') to '{V}' (header false)",
    "explain analyze delete from trial_data",
    "explain analyze update trial_data set reward = 1",
    "explain analyze insert into tasks (collection, name) values ('x', 'y')",
    "explain analyze create table evil as select 1",
    "explain analyze copy trial_data to 'dump' (format parquet, partition_by (experiment))",
    "explain (analyze) delete from trial_data",
    # plain writes
    "delete from trial_data",
    "update trial_data set reward = 1",
    "insert into tasks (collection, name) values ('x', 'y')",
    "insert or replace into tasks (collection, name) values ('x', 'y')",
    "create table evil (x int)",
    "create view evil as select 1",
    "create or replace view trials as select 1 as one",
    "create macro evil(x) as x",
    "create sequence evil",
    "drop view trials",
    "drop table trial_data",
    "alter table trial_data rename to gone",
    "alter table trial_data add column evil int",
    "truncate trial_data",
    "comment on table trial_data is 'evil'",
    "select 1; delete from trial_data",
    # files
    f"copy (select 'x') to '{V}'",
    f"copy trial_data to '{V}'",
    f"copy tasks from '{V}'",
    "export database 'exported'",
    "select * from read_text('/etc/hostname')",
    f"select * from read_csv('{V}')",
    "select * from glob('/*')",
    "select * from read_parquet('elsewhere/*.parquet')",
    # other databases
    "attach 'other.duckdb' as other",
    "attach 'other.duckdb' as other (read_only); select 1",
    "detach database if exists other",
    # extensions and the network
    "install httpfs",
    "force install httpfs",
    "load httpfs",
    "select * from read_json('https://example.com/x.json')",
    "call dbgen(sf = 0.01)",
    "create persistent secret evil (type s3, key_id 'k', secret 's')",
    # configuration
    "set enable_external_access = true",
    "set autoinstall_known_extensions = true",
    "set autoload_known_extensions = true",
    "set lock_configuration = false",
    "reset lock_configuration",
    "reset autoload_known_extensions",
    "set allowed_directories = ['/']",
    "set temp_directory = 'spill'",
    f"set profiling_output = '{V}'; set enable_profiling = 'json'; select 1",
    f"pragma enable_profiling = 'json'; pragma profiling_output = '{V}'; select 1",
    "pragma memory_limit = '1GB'",
    # transactions and maintenance
    "begin; delete from trial_data; commit",
    "commit; delete from trial_data",
    "rollback; delete from trial_data",
    "checkpoint",
    "force checkpoint",
    "vacuum",
    "call checkpoint()",
    "select * from query('delete from trial_data')",
    "use memory; create table evil (x int)",
]

SETTINGS = ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions", "lock_configuration")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guard")
    db = root / "t.duckdb"
    with Store(db) as store:
        assert upload([write_run(root / "out", basic_trials(3))], "exp", store=store).created_trials == 3
    return db


@pytest.fixture(params=["read-write", "read-only"])
def store(request: pytest.FixtureRequest, template: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where DuckDB would install extensions and secrets
    shutil.copy(template, tmp_path / "s.duckdb")
    (tmp_path / V).write_text("precious\n")
    s = Store.open(tmp_path / "s.duckdb", read_only=request.param == "read-only")
    yield s
    s.close()


def _state(store: Store, root: Path) -> tuple[object, ...]:
    db = store.connection
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".wal"))
    return (
        files,
        (root / V).read_text(),
        db.execute("SELECT count(*), sum(reward) FROM trial_data").fetchall(),
        db.execute("SELECT count(*) FROM tasks").fetchall(),
        db.execute("SELECT database_name, table_name, column_count FROM duckdb_tables() ORDER BY ALL").fetchall(),
        db.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY ALL").fetchall(),
        db.execute("SELECT sequence_name FROM duckdb_sequences()").fetchall(),
        db.execute("SELECT database_name FROM duckdb_databases() ORDER BY ALL").fetchall(),
        db.execute("SELECT current_database()").fetchall(),
        db.execute(f"SELECT name, value FROM duckdb_settings() WHERE name IN {SETTINGS!r} ORDER BY name").fetchall(),
    )


def _locked_down(store: Store) -> None:
    got = dict(store.connection.execute(
        f"SELECT name, value FROM duckdb_settings() WHERE name IN {SETTINGS!r}").fetchall())
    assert got == {"enable_external_access": "false", "autoinstall_known_extensions": "false",
                   "autoload_known_extensions": "false", "lock_configuration": "true"}


@pytest.mark.parametrize("sql", ATTACKS)
def test_query_refuses_and_changes_nothing(store: Store, tmp_path: Path, sql: str) -> None:
    _locked_down(store)
    before = _state(store, tmp_path)
    with pytest.raises(StoreError):
        store.query(sql)
    assert _state(store, tmp_path) == before
    assert not (tmp_path / "home").exists()
    assert store.query("SELECT count(*) FROM trials")[1] == [(3,)]


@pytest.mark.parametrize("sql", ATTACKS)
def test_the_connection_holds_without_the_statement_check(store: Store, tmp_path: Path, sql: str) -> None:
    before = _state(store, tmp_path)
    with contextlib.suppress(StoreError):
        run_statements(store.connection, duckdb.extract_statements(sql), None, False)
    assert _state(store, tmp_path) == before
    assert not (tmp_path / "home").exists()
    _locked_down(store)


def test_reads_still_work(store: Store) -> None:
    assert store.query("SELECT task_name FROM trials ORDER BY 1")[1] == [("task-0",), ("task-1",), ("task-2",)]
    assert store.query("EXPLAIN ANALYZE SELECT count(*) FROM trials")[0] == ["explain_key", "explain_value"]
    assert store.query("SELECT 42; SELECT 43")[1] == [(43,)]
    assert store.query("SELECT * FROM query('SELECT 41 + 1')")[1] == [(42,)]


def test_allowed_files_can_be_read_but_not_written(tmp_path: Path, template: Path) -> None:
    shutil.copy(template, tmp_path / "s.duckdb")
    data = tmp_path / "extra.csv"
    data.write_text("task_name,label\ntask-0,good\n")
    other = tmp_path / "other.csv"
    other.write_text("a\n1\n")
    with Store.open(tmp_path / "s.duckdb", read_only=True, allow_files=[data]) as store:
        rows = store.query(f"SELECT t.task_name, e.label FROM trials t JOIN read_csv('{data}') e USING (task_name)")[1]
        assert rows == [("task-0", "good")]
        with pytest.raises(StoreError, match="file system operations are disabled"):
            store.query(f"SELECT * FROM read_csv('{other}')")
        with pytest.raises(StoreError, match="COPY statements are refused"):
            store.query(f"EXPLAIN ANALYZE COPY (SELECT 'x') TO '{data}' (HEADER false)")
    assert data.read_text() == "task_name,label\ntask-0,good\n"
