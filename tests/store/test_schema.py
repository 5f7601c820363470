"""A blank store gets every table, view and column, and records its migrations."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from atif.errors import NotFoundError, StoreError
from atif.store import VIEWS, Store, migrations

TABLES = {
    "_atif_migrations", "collections", "tasks", "criterion_sets", "criteria", "experiments", "trajectory_data",
    "trajectory_raw", "trial_data", "step_data", "tool_call_data", "rating_data", "rating_history", "judge_cache",
    "uploads",
}
VIEW_COLUMNS = {
    "trials": ["trial_id", "experiment", "task_name", "epoch", "reward", "cost_usd", "duration_seconds", "steps",
               "input_tokens", "output_tokens", "cached_tokens", "error", "agent_name", "model_name"],
    "ratings": ["trial_id", "experiment", "task_name", "criterion", "verdict", "source", "reasoning", "judge_model",
                "cost_usd", "cached", "truncated", "error"],
    "steps": ["trial_id", "experiment", "task_name", "trajectory_id", "path", "step_id", "source", "timestamp",
              "model_name", "message_chars", "reasoning_chars", "tool_call_count", "prompt_tokens",
              "completion_tokens", "cached_tokens", "cost_usd", "is_copied_context"],
    "tool_calls": ["trial_id", "experiment", "task_name", "trajectory_id", "path", "step_id", "call_index",
                   "tool_call_id", "function_name", "arguments", "result", "is_error"],
    "experiment_metrics": ["experiment", "agent_name", "model_name", "n_trials", "n_errored", "reward_mean",
                           "reward_p50", "reward_p95", "duration_mean", "duration_p50", "duration_p95", "cost_mean",
                           "cost_total", "input_tokens", "output_tokens", "cached_tokens", "steps_mean", "pass_rates"],
    "criterion_metrics": ["experiment", "criterion", "n_rated", "n_yes", "n_no", "n_unscored", "yes_rate", "ci_low",
                          "ci_high"],
    "replaced_ratings": ["trial_id", "experiment", "task_name", "criterion", "verdict", "source", "reasoning",
                         "judge_model", "cited_steps", "created_at", "replaced_at", "p_yes"],
    "judge_usage": ["experiment", "judge_model", "calls", "cache_hits", "unscored", "prompt_tokens",
                    "completion_tokens", "cost_usd", "mean_latency_ms"],
}


def test_blank_store_has_schema_views_and_migration_record(tmp_path: Path) -> None:
    path = tmp_path / "blank.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path), read_only=True)
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()}
    views = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'").fetchall()}
    assert tables == TABLES
    assert views == set(VIEWS)
    for view, cols in VIEW_COLUMNS.items():
        got = [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
        assert got[: len(cols)] == cols, view
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    recorded = con.execute("SELECT id, name FROM _atif_migrations ORDER BY id").fetchall()
    assert recorded == [(i, fn.__name__) for i, fn in enumerate(migrations.MIGRATIONS, start=1)]
    con.close()


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    assert migrations.apply(con) == []
    con.close()
    with Store(path) as store:
        assert store.query("SELECT count(*) FROM _atif_migrations")[1] == [(len(migrations.MIGRATIONS),)]


def test_default_path_is_atif_duckdb_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store() as store:
        assert store.path == Path("atif.duckdb")
    assert (tmp_path / "atif.duckdb").exists()
    monkeypatch.setenv("ATIF_DB", str(tmp_path / "env.duckdb"))
    with Store() as store:
        assert store.path == tmp_path / "env.duckdb"
    assert (tmp_path / "env.duckdb").exists()


def test_read_only_open_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such store"):
        Store.open(tmp_path / "missing.duckdb", read_only=True)
    duckdb.connect(str(tmp_path / "other.duckdb")).close()
    with pytest.raises(StoreError, match="not an atif store"):
        Store.open(tmp_path / "other.duckdb", read_only=True)


def test_docs_list_every_view_column(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text()
    sections = {}
    for part in doc.split("\n## `")[1:]:
        name, body = part.split("`", 1)
        sections[name] = [line.split("|")[1].strip().strip("`") for line in body.splitlines()
                          if line.startswith("| `")]
    with Store(tmp_path / "s.duckdb") as store:
        for view in VIEWS:
            columns = [r[0] for r in store.query(f"DESCRIBE {view}")[1]]
            assert sections.get(view) == columns, view


def test_files_that_are_not_usable_stores(tmp_path: Path) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot open the store") as info:
        Store(junk)
    assert "\n" not in str(info.value)
    newer = tmp_path / "newer.duckdb"
    Store(newer).close()
    con = duckdb.connect(str(newer))
    con.execute("INSERT INTO _atif_migrations (id, name) VALUES (99, 'm099_future')")
    con.close()
    with pytest.raises(StoreError, match="newer atif"):
        Store(newer)
    with pytest.raises(StoreError, match="newer atif"):
        Store.open(newer, read_only=True)
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "no" / "such" / "dir.duckdb")
