"""Read-only SQL, the numbers the views compute, reading trials back, and the Parquet export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from store_builders import basic_trials, write_run

from atif import upload
from atif.errors import NotFoundError, StoreError
from atif.store import VIEWS, Store


@pytest.fixture
def store(tmp_path: Path, criteria: dict[str, Any]) -> Store:
    trials = basic_trials(5)  # rewards 0, .5, 1, 0, .5; durations 10 .. 50 s
    trials[3]["error"] = "TimeoutError: agent ran out of time"
    s = Store(tmp_path / "s.duckdb")
    upload([write_run(tmp_path / "out", trials)], "exp", criteria=criteria, store=s)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO trial_data (trial_id, experiment, task_name, record_hash) VALUES ('x', 'e', 't', 'h')", "INSERT"),
        ("DELETE FROM trial_data", "DELETE"),
        ("UPDATE trial_data SET reward = 1", "UPDATE"),
        ("CREATE TABLE evil (x INT)", "CREATE"),
        ("DROP VIEW trials", "DROP"),
        ("COPY trial_data TO 'dump.csv'", "COPY"),
        ("ATTACH 'other.duckdb'", "ATTACH"),
        ("SELECT 1; DELETE FROM trial_data", "DELETE"),
    ],
)
def test_writes_are_refused(store: Store, tmp_path: Path, sql: str, kind: str) -> None:
    with pytest.raises(StoreError, match=f"queries are read-only: {kind} statements are refused"):
        store.query(sql)
    assert store.query("SELECT count(*) FROM trials")[1] == [(5,)]
    store.close()
    with Store.open(tmp_path / "s.duckdb", read_only=True) as ro:
        with pytest.raises(StoreError, match="read-only"):
            ro.query(sql)
        assert ro.query("SELECT count(*) FROM trial_data")[1] == [(5,)]


def test_read_queries_work(store: Store) -> None:
    cols, rows = store.query("WITH t AS (SELECT * FROM trials) SELECT task_name, reward FROM t ORDER BY task_name")
    assert cols == ["task_name", "reward"] and rows[0] == ("task-0", 0.0)
    assert store.query("DESCRIBE trials")[1][0][0] == "trial_id"
    assert len(store.query("SHOW TABLES")[1]) > 0
    assert store.query("SELECT ?::INT + 1", [41])[1] == [(42,)]
    _, rows = store.query("SELECT metadata, created_at FROM trials LIMIT 1", decode_json=True)
    assert isinstance(rows[0][0], dict) and rows[0][1].tzinfo is not None
    with pytest.raises(StoreError, match="SQL error: Catalog Error"):
        store.query("SELECT * FROM no_such_view")
    with pytest.raises(StoreError, match="SQL error"):
        store.query("SELEC 1")


def test_experiment_metrics_numbers(store: Store) -> None:
    cols, rows = store.query("SELECT * FROM experiment_metrics")
    assert len(rows) == 1
    m = dict(zip(cols, rows[0], strict=False))
    assert (m["experiment"], m["agent_name"], m["model_name"]) == ("exp", "test-agent", "gpt-test")
    assert (m["n_trials"], m["n_errored"]) == (5, 1)
    assert m["reward_mean"] == pytest.approx(0.4)
    assert m["reward_p50"] == pytest.approx(0.5)
    assert m["reward_p95"] == pytest.approx(0.9)  # sorted 0, 0, .5, .5, 1: 0.5 + 0.8 * 0.5
    assert (m["duration_mean"], m["duration_p50"], m["duration_p95"]) == pytest.approx((30.0, 30.0, 48.0))
    assert m["cost_mean"] == pytest.approx(0.0025) and m["cost_total"] == pytest.approx(0.0125)
    assert (m["input_tokens"], m["output_tokens"], m["cached_tokens"], m["steps_mean"]) == (1250, 125, 400, 4.0)
    assert m["pass_rates"] is None

    ids = sorted((t["task_name"], t["trial_id"]) for t in store.trials("exp"))
    for (_, tid), verdict in zip(ids, ["YES", "YES", "NO", "UNSCORED", "YES"], strict=False):
        store.save_rating(tid, "complete", verdict, source="judge")
    cols, rows = store.query("SELECT * FROM experiment_metrics")
    m = dict(zip(cols, rows[0], strict=False))
    assert m["pass_rates"] == {"complete": pytest.approx(0.75)}


def test_criterion_metrics_wilson_interval(tmp_path: Path, criteria: dict[str, Any]) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        upload([write_run(tmp_path / "out", basic_trials(11))], "exp", criteria=criteria, store=store)
        ids = sorted(t["trial_id"] for t in store.trials("exp"))
        for tid, verdict in zip(ids, ["YES"] * 7 + ["NO"] * 3 + ["UNSCORED"], strict=False):
            store.save_rating(tid, "complete", verdict, source="judge")
        cols, rows = store.query("SELECT * FROM criterion_metrics WHERE criterion = 'complete'")
        m = dict(zip(cols, rows[0], strict=False))
        assert (m["n_rated"], m["n_yes"], m["n_no"], m["n_unscored"]) == (10, 7, 3, 1)
        assert m["yes_rate"] == pytest.approx(0.7)
        # Wilson score interval for 7 of 10 at 95 %, computed by hand: (0.3968, 0.8922).
        assert m["ci_low"] == pytest.approx(0.39678, abs=1e-4)
        assert m["ci_high"] == pytest.approx(0.89221, abs=1e-4)


def test_judge_usage_keeps_judge_cost_apart(store: Store) -> None:
    ids = [t["trial_id"] for t in store.trials("exp")]
    store.save_rating(ids[0], "complete", "YES", source="judge", judge_model="j", prompt_tokens=100,
                      completion_tokens=10, cost_usd=0.5, latency_ms=100)
    store.save_rating(ids[1], "complete", "NO", source="judge", judge_model="j", prompt_tokens=100,
                      completion_tokens=10, cost_usd=0.5, latency_ms=100, cached=True)
    store.save_rating(ids[2], "complete", "UNSCORED", source="judge", judge_model="j", prompt_tokens=50,
                      cost_usd=0.25, latency_ms=300, error="unparseable")
    cols, rows = store.query("SELECT * FROM judge_usage")
    u = dict(zip(cols, rows[0], strict=False))
    assert (u["calls"], u["cache_hits"], u["unscored"], u["prompt_tokens"]) == (2, 1, 1, 150)
    assert u["cost_usd"] == pytest.approx(0.75) and u["mean_latency_ms"] == pytest.approx(200)
    # The agent's cost in the metrics is untouched by judge spending.
    assert store.query("SELECT cost_total FROM experiment_metrics")[1][0][0] == pytest.approx(0.0125)


def test_experiments_and_experiment(store: Store, tmp_path: Path) -> None:
    [e] = store.experiments()
    assert (e["name"], e["collection"], e["criterion_set"], e["n_trials"], e["n_ratings"]) == (
        "exp", "exp", "basics", 5, 0)
    exp = store.experiment("exp")
    assert [c["label"] for c in exp["criteria"]] == ["complete", "safe"] and exp["n_tasks"] == 5
    with pytest.raises(NotFoundError):
        store.experiment("nope")
    with pytest.raises(NotFoundError):
        store.trial("nope")
    with pytest.raises(NotFoundError):
        store.trajectory_bytes("nope")


def test_parquet_export_partitioned_by_experiment(store: Store, tmp_path: Path) -> None:
    upload([tmp_path / "out"], "exp2", store=store)
    tid = store.trials("exp")[0]["trial_id"]
    store.save_rating(tid, "complete", "YES", source="judge", judge_model="j")
    other = store.trials("exp")[1]["trial_id"]
    store.save_rating(other, "complete", "YES", source="judge", judge_model="j")
    store.save_rating(other, "complete", "NO", source="human")  # that judge rating goes to replaced_ratings
    out = tmp_path / "parquet"
    written = store.export_parquet(out)
    assert set(written) == set(VIEWS)
    assert (out / "trials" / "experiment=exp").is_dir() and (out / "trials" / "experiment=exp2").is_dir()
    con = duckdb.connect()
    for view in VIEWS:
        got = con.execute(
            f"SELECT experiment, count(*) FROM read_parquet('{out}/{view}/**/*.parquet', hive_partitioning = true) "
            "GROUP BY 1 ORDER BY 1").fetchall()
        want = store.query(f"SELECT experiment, count(*) FROM {view} GROUP BY 1 ORDER BY 1")[1]
        assert got == want, view
    only = store.export_parquet(tmp_path / "one", experiment="exp2")
    assert "ratings" not in only  # exp2 has no ratings
    assert [p.name for p in (tmp_path / "one" / "trials").iterdir()] == ["experiment=exp2"]


def test_query_to_parquet(store: Store, tmp_path: Path) -> None:
    n = store.query_to_parquet("SELECT task_name, reward FROM trials ORDER BY task_name", tmp_path / "r.parquet")
    assert n == 5
    rows = duckdb.connect().execute(f"SELECT * FROM '{tmp_path / 'r.parquet'}'").fetchall()
    assert rows[0] == ("task-0", 0.0)
    with pytest.raises(StoreError, match="read-only"):
        store.query_to_parquet("DELETE FROM trial_data", tmp_path / "x.parquet")
