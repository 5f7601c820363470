"""Report speed at scale: ``build_report`` over 100,000 trials x 5 criteria, against a plain scan.

Generates, entirely in SQL, a store with two experiments of N trials each (5,000 tasks with
tags, 3 agents, 4 models, named rewards, 1.5% errors) and 5 judge ratings per trial (1%
UNSCORED with reasons, 10% cached), then times in this process:

* the reference: one ``count``/``avg`` scan of the ``trials`` view for the experiment
  (the floor for anything that reads every trial);
* ``build_report`` (whole experiment), ``build_report(by="tag")``, the Markdown rendering;
* ``compare`` of the two experiments (N pairs, McNemar + bootstrap) and a ``gate`` with a
  baseline;
* the HTML page (summary over all trials, table and viewer for 1,000).

The target of the reports issue is ``atif report`` under 5 s at 100,000 x 5.

Run from the repository root::

    python -m bench.report_bench            # 100,000 trials per experiment
    python -m bench.report_bench 20000      # fewer
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atif.report import build_report, compare, gate, render_report_html, render_report_md
from atif.store import Store, migrations

N_TASKS = 5000
CRITERIA = 5
TARGET_S = 5.0


def generate(path: Path, n: int) -> float:
    """Write a store with experiments ``bench-a`` and ``bench-b`` of ``n`` trials each; return seconds."""
    t0 = time.perf_counter()
    con = duckdb.connect(str(path))
    migrations.apply(con)
    # Pseudo-random values come from hash() so that every run generates the same data.
    con.execute(f"""
        INSERT INTO collections (name) VALUES ('bench');
        INSERT INTO tasks (collection, name, instruction, tags)
        SELECT 'bench', 'task-' || i, 'Solve task ' || i,
               CASE i % 4 WHEN 0 THEN ['easy'] WHEN 1 THEN ['hard', 'python'] WHEN 2 THEN ['python'] ELSE [] END
        FROM range({N_TASKS}) t(i);
        INSERT INTO experiments (name, collection) VALUES ('bench-a', 'bench'), ('bench-b', 'bench');
        CREATE TEMP TABLE gen AS
        SELECT e.name AS experiment, e.k, i,
               (hash(i, e.k, 1) % 10000) / 10000.0 AS u1,
               (hash(i, e.k, 2) % 10000) / 10000.0 AS u2,
               (hash(i, e.k, 3) % 10000) / 10000.0 AS u3,
               '{{"schema_version":"ATIF-v1.6","session_id":"' || e.name || '-' || i || '","agent":{{"name":"agent-'
               || (i % 3) || '","version":"1.0"}},"steps":[]}}' AS raw
        FROM (VALUES ('bench-a', 0), ('bench-b', 1)) e(name, k), range({n}) t(i);
        INSERT INTO trajectory_data (trajectory_id, raw, schema_version, agent_name, agent_version, model_name,
                                     step_count, n_bytes)
        SELECT sha256(raw), raw::BLOB,
               'ATIF-v1.6', 'agent-' || (i % 3), '1.0', 'model-' || (i % 4), 20, strlen(raw)
        FROM gen;
        INSERT INTO trial_data (trial_id, experiment, task_name, epoch, source_trial_id, trajectory_id, reward,
                                rewards, steps, cost_usd, duration_seconds, input_tokens, output_tokens,
                                cached_tokens, error, metadata, record_hash)
        SELECT sha256('["' || experiment || '","task-' || (i % {N_TASKS}) || '","run-' || i || '",' || (i // {N_TASKS} + 1) || ']'),
               experiment, 'task-' || (i % {N_TASKS}), i // {N_TASKS} + 1,
               'run-' || i, sha256(raw),
               round(least(1.0, u1 + 0.05 * k), 3),
               json_object('reward', round(least(1.0, u1 + 0.05 * k), 3), 'tests_passed', (u2 * 20)::INTEGER),
               10 + (u2 * 40)::INTEGER, round(0.01 + u3 * 0.5, 4), round(5 + u2 * 600, 2),
               (20000 + u3 * 80000)::BIGINT, (1000 + u1 * 4000)::BIGINT, (10000 + u3 * 40000)::BIGINT,
               CASE WHEN u2 < 0.005 THEN 'TimeoutError: agent exceeded 600 s'
                    WHEN u2 < 0.010 THEN 'RuntimeError: container exited with code 137'
                    WHEN u2 < 0.015 THEN 'ValueError: malformed tool call' END,
               '{{}}', sha256('r' || experiment || i)
        FROM gen;
        INSERT INTO rating_data (trial_id, criterion, verdict, reasoning, source, judge_model, prompt_tokens,
                                 completion_tokens, cost_usd, latency_ms, cached, error)
        SELECT sha256('["' || g.experiment || '","task-' || (g.i % {N_TASKS}) || '","run-' || g.i || '",' || (g.i // {N_TASKS} + 1) || ']'),
               'criterion-' || c,
               CASE WHEN (hash(g.i, g.k, c, 9) % 1000) < 10 THEN 'UNSCORED'
                    WHEN (hash(g.i, g.k, c, 8) % 1000) / 1000.0 < 0.55 + 0.08 * c + 0.02 * g.k THEN 'YES'
                    ELSE 'NO' END,
               'Because step ' || (1 + c) || ' shows it.', 'judge', 'openai/gpt-4o-mini', 3000, 120,
               0.0006, 900.0, (hash(g.i, c) % 10) = 0,
               CASE WHEN (hash(g.i, g.k, c, 9) % 1000) < 10 THEN 'no verdict in the reply' END
        FROM gen g, range({CRITERIA}) r(c);
        DROP TABLE gen;
    """)
    con.close()
    return time.perf_counter() - t0


def timed(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Best of ``repeat`` wall times of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(n: int) -> None:
    """Generate, measure, print."""
    with tempfile.TemporaryDirectory(prefix="atif-report-bench-") as tmp:
        path = Path(tmp) / "bench.duckdb"
        gen_s = generate(path, n)
        print(f"generated 2 x {n:,} trials x {CRITERIA} criteria in SQL: {gen_s:.1f} s")
        with Store.open(path, read_only=True) as store:
            ref = timed(lambda: store.read_one(
                "SELECT count(*), avg(reward), avg(cost_usd) FROM trials WHERE experiment = 'bench-b'"))
            rep = timed(lambda: build_report(store, "bench-b"))
            by_tag = timed(lambda: build_report(store, "bench-b", by="tag"))
            report = build_report(store, "bench-b")
            md = timed(lambda: render_report_md(report))
            cmp_s = timed(lambda: compare(store, "bench-a", "bench-b"), repeat=1)
            gate_s = timed(lambda: gate(store, "bench-b", min_pass={"*": 0.5}, baseline="bench-a"), repeat=1)
            html_s = timed(lambda: render_report_html(store, "bench-b"), repeat=1)
            size = len(render_report_html(store, "bench-b").encode())
        s = report["summary"]
        assert s["n_trials"] == n and len(report["criteria"]) == CRITERIA
        print(f"reference scan of trials (count/avg):   {ref * 1000:8.1f} ms")
        print(f"build_report:                           {rep * 1000:8.1f} ms  ({rep / ref:5.1f} x reference)")
        print(f"build_report --by tag:                  {by_tag * 1000:8.1f} ms  ({by_tag / ref:5.1f} x reference)")
        print(f"render markdown:                        {md * 1000:8.1f} ms")
        print(f"compare (bootstrap, McNemar):           {cmp_s * 1000:8.1f} ms  ({cmp_s / ref:5.1f} x reference)")
        print(f"gate with baseline:                     {gate_s * 1000:8.1f} ms")
        print(f"HTML page (1,000 trials listed):        {html_s * 1000:8.1f} ms, {size / 1e6:.1f} MB")
        verdict = "met" if rep + md < TARGET_S else "MISSED"
        print(f"target: `atif report` < {TARGET_S:.0f} s at {n:,} x {CRITERIA}: {verdict} ({rep + md:.2f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
