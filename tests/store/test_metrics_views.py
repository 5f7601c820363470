"""The views read trial keys and rating cohorts instead of joining trajectories; what they show is unchanged.

Reference: the view definitions of a store before ``m010_trial_key`` (taken from a blank store made
with the first eight migrations), run over the same tables. Values are compared exactly, except
floating-point sums and means, which may differ in the last bits when DuckDB adds the same
numbers in another order (as it may from one plan to the next): those to 1e-12, relatively.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from store_builders import basic_trials, make_trajectory, write_run

from atif import upload
from atif.store import VIEWS, Store, migrations
from atif.store.keys import trial_key

OLD_MIGRATIONS = 9  # the schema before the integer trial key


def _legacy_views(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``CREATE OR REPLACE VIEW`` statements of the views as the first eight migrations made them."""
    path = tmp / "legacy.duckdb"
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:OLD_MIGRATIONS])
        Store(path).close()
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    con.close()
    return {name: sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1) for name, sql in rows}


def _trials(prefix: str, agents: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    trials = basic_trials(len(agents), prefix=prefix)
    for i, (t, (agent, model)) in enumerate(zip(trials, agents, strict=True)):
        doc = t["_trajectory"]
        doc["agent"]["name"] = agent
        if model is None:
            doc["agent"].pop("model_name")
            t["metadata"] = {"model_name": f"meta-{i % 2}"}
        else:
            doc["agent"]["model_name"] = model
        t["cost_usd"] = 0.01 * (i + 1)
        t["input_tokens"], t["output_tokens"] = 1000 + i, 100 + i
        if i % 4 == 3:
            t["error"] = "TimeoutError"
    return trials


def build_store(tmp: Path, criteria: dict[str, Any]) -> Path:
    """A store after uploads, judging, re-judging, human overrides and a replace that moves a trial
    to another agent (keeping its human rating)."""
    path = tmp / "s.duckdb"
    a = _trials("a", [("alpha", "m1"), ("alpha", "m1"), ("alpha", "m2"), ("beta", "m1"), ("beta", None),
                      ("beta", None), ("alpha", "m1"), ("beta", "m2")])
    a[0]["criterion_ratings"] = [{"criterion": "complete", "rating": "yes"}]
    a[1]["criterion_ratings"] = [{"criterion": "complete", "rating": "NO", "source": "human"}]
    a.append({"task_name": "a-8", "trial_id": "run-8", "reward": 0.25, "metadata": {"model_name": "no-trajectory"}})
    b = _trials("b", [("alpha", "m1"), ("gamma", "m3"), ("gamma", "m3")])
    with Store(path) as store:
        upload([write_run(tmp / "a", a)], "exp-a", criteria=criteria, create_missing_tasks=True, store=store)
        upload([write_run(tmp / "b", b)], "exp-b", criteria=criteria, create_missing_tasks=True, store=store)
        pending = store.pending("exp-a") + store.pending("exp-b")
        rows = [{"trial_id": p.trial_id, "criterion": p.criterion, "source": "judge", "judge_model": f"judge-{n % 2}",
                 "verdict": ("YES", "NO", "YES", "UNSCORED")[n % 4], "cached": n % 5 == 0,
                 "prompt_tokens": 100 + n, "completion_tokens": 10, "cost_usd": 0.001 * n, "latency_ms": 50.0 + n}
                for n, p in enumerate(pending)]
        store.save_ratings(rows)
        # A human overrides a judge verdict; a re-judge replaces another.
        store.save_rating(rows[0]["trial_id"], rows[0]["criterion"], "NO", source="human")
        store.save_ratings([dict(rows[1], verdict="YES")], replace_judge=True)
        # The trial with the human "complete" label gets a human "safe" label too (not in its record),
        # then new content from another agent: both labels stay, and follow the trial to its new agent.
        a1 = store.query("SELECT trial_id FROM trial_data WHERE task_name = 'a-1'")[1][0][0]
        store.save_rating(a1, "safe", "YES", source="human")
        a[1]["_trajectory"] = make_trajectory("a-1", answer="again")
        a[1]["_trajectory"]["agent"]["name"] = "delta"
        upload([write_run(tmp / "a2", a)], "exp-a", criteria=criteria, replace=True, store=store)
    return path


def _rows(path: Path, view: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
        order = ", ".join(f'"{c}"' for c in cols if c not in ("pass_rates", "cited_steps", "tags"))
        return con.execute(f"SELECT * FROM {view} ORDER BY {order}").fetchall()
    finally:
        con.close()


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-12)
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return bool(x == y)


def _assert_views_equal(new: Path, old: Path) -> None:
    for view in VIEWS:
        got, want = _rows(new, view), _rows(old, view)
        assert want, f"{view} is empty: the comparison would prove nothing"
        assert len(got) == len(want), view
        for g, w in zip(got, want, strict=True):
            assert _same(g, w), (view, g, w)


def test_views_show_what_the_old_views_show(tmp_path: Path, criteria: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = _legacy_views(tmp_path, monkeypatch)
    path = build_store(tmp_path, criteria)
    old = tmp_path / "old-views.duckdb"
    shutil.copy(path, old)
    con = duckdb.connect(str(old))
    for sql in legacy.values():
        con.execute(sql)
    con.close()
    _assert_views_equal(path, old)
    # The cohorts the metrics read without joining are the trials' own (the replaced trial's too).
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute(
        "SELECT count(*) FROM rating_data r JOIN trial_data d USING (trial_id) JOIN trials t USING (trial_id) "
        "WHERE r.trial_key IS DISTINCT FROM d.trial_key OR r.experiment IS DISTINCT FROM t.experiment OR r.agent_name IS DISTINCT FROM t.agent_name "
        "OR r.model_name IS DISTINCT FROM t.model_name").fetchone() == (0,)
    assert con.execute("SELECT criterion, agent_name FROM rating_data WHERE source = 'human' AND trial_id IN "
                       "(SELECT trial_id FROM trial_data WHERE task_name = 'a-1') ORDER BY 1").fetchall() == [
        ("complete", "delta"), ("safe", "delta")]
    assert con.execute("SELECT count(*) FROM rating_history").fetchone()[0] >= 2
    con.close()


def test_an_old_store_is_upgraded_in_place_with_the_same_view_outputs(
    tmp_path: Path, criteria: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = _legacy_views(tmp_path, monkeypatch)
    path = build_store(tmp_path, criteria)
    # Take the store back to its schema before m010: no keys, no cohorts, the old views.
    con = duckdb.connect(str(path))
    for sql in legacy.values():
        con.execute(sql)
    for table, cols in (("trial_data", ("trial_key", "agent_name", "model_name")),
                        ("rating_data", ("trial_key", "experiment", "agent_name", "model_name")),
                        ("rating_history", ("trial_key", "experiment", "agent_name", "model_name"))):
        for col in cols:
            con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    con.execute("DELETE FROM _atif_migrations WHERE id > ?", [OLD_MIGRATIONS])
    con.execute("CHECKPOINT")
    con.close()
    before = tmp_path / "before.duckdb"
    shutil.copy(path, before)
    with Store(path) as store:  # migrates
        assert store.query("SELECT max(id) FROM _atif_migrations")[1] == [(len(migrations.MIGRATIONS),)]
        keys = store.query("SELECT trial_id, trial_key FROM trial_data UNION ALL SELECT trial_id, trial_key FROM "
                           "rating_data UNION ALL SELECT trial_id, trial_key FROM rating_history")[1]
        assert keys and all(k == trial_key(i) for i, k in keys)
    _assert_views_equal(path, before)
