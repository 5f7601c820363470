"""The ``experiment_metrics`` view keeps its columns and values across its faster definition."""

from __future__ import annotations

import inspect
import math
import re

import duckdb
from report_builders import StoreBuilder, simple_trajectory

from atif.store import migrations


def _first_definition() -> str:
    """The view as the first migration defined it (the reference the new one must match)."""
    src = inspect.getsource(migrations._create_views)
    body = re.search(r"CREATE VIEW experiment_metrics AS(.*?);\n", src, re.S)
    assert body is not None
    return body.group(1)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
    cur = con.execute(f"SELECT * FROM ({sql}) ORDER BY experiment, agent_name NULLS FIRST, model_name NULLS FIRST")
    return [d[0] for d in cur.description], cur.fetchall()


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_experiment_metrics_matches_its_first_definition(builder: StoreBuilder) -> None:
    # Trials with and without a trajectory (agent/model from metadata), unrated trials, UNSCORED
    # verdicts, criteria rated in one cohort only, NULL rewards and costs, errors.
    for i in range(60):
        exp = ("a", "b", "c")[i % 3]
        traj = simple_trajectory(f"t{i}", answer=f"answer {i}") if i % 4 else None
        if traj is not None:
            traj["agent"]["name"] = f"agent-{i % 2}"
            if i % 5 == 0:
                traj["agent"].pop("model_name", None)
        ratings = {} if i % 7 == 0 else {
            "correct": ("YES", "NO", "UNSCORED")[i % 3 if i % 2 else 0],
            **({"style": "NO" if i % 6 else "YES"} if i % 2 else {}),
        }
        builder.trial(exp, f"t{i % 9}", epoch=i // 9 + 1, reward=None if i % 11 == 0 else (i % 10) / 10,
                      cost=None if i % 13 == 0 else 0.01 * i, duration=float(i), steps=i % 8,
                      tokens=(100 * i, 10 * i, i), error="boom" if i % 17 == 0 else None,
                      ratings=ratings, trajectory=traj, model=f"model-{i % 3}" if i % 5 else None,
                      agent=f"agent-{i % 2}")
    builder.close()
    con = duckdb.connect(str(builder.path), read_only=True)
    try:
        new_cols, new = _rows(con, "SELECT * FROM experiment_metrics")
        old_cols, old = _rows(con, _first_definition())
    finally:
        con.close()
    assert new_cols == old_cols
    assert len(new) == len(old) > 6
    for n, o in zip(new, old, strict=True):
        assert all(_same(x, y) for x, y in zip(n, o, strict=True)), (n, o)
    # The data exercises what the view must get right: NULL model names and missing pass rates.
    assert any(r[new_cols.index("model_name")] is None for r in new)
    assert any(r[new_cols.index("pass_rates")] for r in new)
