"""The store's metrics views from 1,000 to 1,000,000 trials, against a plain scan of the same rows.

For each size, :func:`bench.store_bench.build_metrics_store` makes a realistic store in SQL (a
distinct trajectory per trial, ids of the real shape, 3 ratings per trial, the integer trial keys
and rating cohorts the store's writers write). Then, best of 3, wall and CPU time of:

- library (``Store.query``): ``experiment_metrics``, ``criterion_metrics``, an aggregate of ``trials``,
  the reference (one scan and aggregate of the same trials and ratings, no join), and
  ``legacy experiment_metrics``: the view as it was before the trial key (joins on 64-character
  ids, trials to trajectories), run as a query over the same tables;
- whole processes as a user runs them: ``atif query "select * from experiment_metrics"`` and
  ``atif query`` of the reference, and ``atif query "select 1"`` (start-up); CPU is the child's.

Then the growth per tenfold size (10 is linear). Sizes: full ``1000 10000 100000 1000000``
(the million-trial store takes a few minutes to generate); ``--quick``: ``1000 10000 100000``.
Goal: ``experiment_metrics`` under 1 s at 1,000,000.

    python -m bench.metrics_bench
    python -m bench.metrics_bench --quick
    python -m bench.metrics_bench 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store_bench import METRICS_REFERENCE, build_metrics_store  # noqa: E402

LEGACY_EXPERIMENT_METRICS = """
WITH trials AS (
    SELECT t.trial_id, t.experiment, t.task_name, t.epoch, t.reward, t.cost_usd, t.duration_seconds,
           t.steps, t.input_tokens, t.output_tokens, t.cached_tokens, t.error,
           j.agent_name, coalesce(j.model_name, json_extract_string(t.metadata, '$.model_name')) AS model_name,
           t.rewards, t.trajectory_id, t.source_trial_id, t.metadata, k.tags, t.created_at
    FROM trial_data t
    LEFT JOIN trajectory_data j USING (trajectory_id)
    LEFT JOIN experiments e ON e.name = t.experiment
    LEFT JOIN tasks k ON k.collection = e.collection AND k.name = t.task_name
), pr AS (
    SELECT t.experiment, t.agent_name, t.model_name, r.criterion,
           avg(CASE WHEN r.verdict = 'YES' THEN 1.0 WHEN r.verdict = 'NO' THEN 0.0 END) AS rate
    FROM rating_data r JOIN trials t USING (trial_id)
    GROUP BY ALL
), prm AS (
    SELECT experiment, agent_name, model_name, map(list(criterion ORDER BY criterion), list(rate ORDER BY criterion)) AS pass_rates
    FROM pr GROUP BY ALL
), m AS (
    SELECT experiment, agent_name, model_name, count(*) AS n_trials, count(error) AS n_errored,
           avg(reward) AS reward_mean, quantile_cont(reward, 0.5) AS reward_p50, quantile_cont(reward, 0.95) AS reward_p95,
           avg(duration_seconds) AS duration_mean, quantile_cont(duration_seconds, 0.5) AS duration_p50,
           quantile_cont(duration_seconds, 0.95) AS duration_p95, avg(cost_usd) AS cost_mean, sum(cost_usd) AS cost_total,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens,
           avg(steps) AS steps_mean
    FROM trials GROUP BY ALL
)
SELECT m.*, prm.pass_rates
FROM m LEFT JOIN prm
  ON prm.experiment = m.experiment
 AND prm.agent_name IS NOT DISTINCT FROM m.agent_name
 AND prm.model_name IS NOT DISTINCT FROM m.model_name"""
"""``experiment_metrics`` as the views defined it before ``m010_trial_key`` (the before figure, same run)."""

LIBRARY = {
    "reference": METRICS_REFERENCE,
    "experiment_metrics": "SELECT * FROM experiment_metrics",
    "legacy experiment_metrics": LEGACY_EXPERIMENT_METRICS,
    "criterion_metrics": "SELECT * FROM criterion_metrics",
    "trials by cohort": "SELECT experiment, agent_name, model_name, count(*), avg(reward) FROM trials GROUP BY ALL",
}
PROCESSES = {
    "atif query reference": " ".join(METRICS_REFERENCE.split()),
    "atif query experiment_metrics": "select * from experiment_metrics",
    "atif query select 1": "select 1",
}


def _atif() -> list[str]:
    script = Path(sys.executable).with_name("atif")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from atif.cli import main; main()"]


def library_times(db: Path) -> dict[str, Any]:
    """Best of 3 wall and CPU seconds of each :data:`LIBRARY` query through ``Store.query``."""
    from atif.store import Store

    out: dict[str, Any] = {}
    with Store(db, read_only=True) as store:
        for name, sql in LIBRARY.items():
            best = best_cpu = float("inf")
            rows: list[Any] = []
            for _ in range(3):
                t, c = time.perf_counter(), time.process_time()
                _, rows = store.query(sql)
                best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
            out[name], out[f"{name} cpu"], out[f"{name} rows"] = best, best_cpu, len(rows)
    return out


def process_times(db: Path) -> dict[str, Any]:
    """Best of 3 wall and CPU seconds of each :data:`PROCESSES` command, as whole ``atif`` processes."""
    out: dict[str, Any] = {}
    for name, sql in PROCESSES.items():
        best = best_cpu = float("inf")
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([*_atif(), "query", sql, "--db", str(db), "--format", "json"], check=True,
                           stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best, best_cpu = min(best, wall), min(best_cpu, cpu)
        out[name], out[f"{name} cpu"] = best, best_cpu
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure every size and print the figures and their growth."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, help="trials (default: 1000 10000 100000 1000000)")
    ap.add_argument("--quick", action="store_true", help="1,000, 10,000 and 100,000 trials")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([1000, 10_000, 100_000] if args.quick else [1000, 10_000, 100_000, 1_000_000])
    one, five, fifteen = os.getloadavg()
    print(f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores")
    figures = {}
    with tempfile.TemporaryDirectory(prefix="atif-metrics-bench-") as tmp:
        for n in sizes:
            db = Path(tmp) / "metrics.duckdb"
            build = build_metrics_store(n, db)
            m = library_times(db) | process_times(db)
            db.unlink()
            figures[n] = m
            print(f"\n== {n:,} trials x 3 ratings (generated in SQL in {build:.1f} s), best of 3, "
                  f"load {os.getloadavg()[0]:.2f} ==")
            for v in (*LIBRARY, *PROCESSES):
                ref = "atif query reference" if v.startswith("atif") else "reference"
                ratio = f"{m[v] / m[ref]:6.1f} x reference" if v != ref and "select 1" not in v else ""
                rows = f"({m[v + ' rows']} rows)" if v + " rows" in m else ""
                print(f"  {v:<30} {m[v] * 1000:9.1f} ms wall {m[v + ' cpu'] * 1000:9.1f} ms cpu  {rows:<14} {ratio}")
            print(f"  experiment_metrics vs legacy: {m['legacy experiment_metrics'] / m['experiment_metrics']:.1f}x "
                  f"faster wall, {m['legacy experiment_metrics cpu'] / m['experiment_metrics cpu']:.1f}x less CPU")
    shown = ("reference", "experiment_metrics", "legacy experiment_metrics", "criterion_metrics")
    print("\n== growth (time at the next size / time at this one) ==")
    print("  " + " " * 26 + "".join(f"{v:>27}" for v in shown))
    for lo, hi in zip(sizes, sizes[1:], strict=False):
        print(f"  {lo:>9,} -> {hi:>9,} ({hi / lo:g}x)" + "".join(f"{figures[hi][v] / figures[lo][v]:27.2f}" for v in shown))
    top = figures[sizes[-1]]
    verdict = "met" if top["experiment_metrics"] < 1.0 else "MISSED"
    print(f"\ngoal: experiment_metrics < 1 s at {sizes[-1]:,} trials: {verdict} ({top['experiment_metrics']:.2f} s wall, "
          f"{top['experiment_metrics cpu']:.2f} s CPU; whole process {top['atif query experiment_metrics']:.2f} s wall)")
    print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
