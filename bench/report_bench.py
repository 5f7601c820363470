"""Report speed at scale: compare and gate from 1,000 to 1,000,000 pairs, and build_report, against plain scans.

Generates, entirely in SQL, a store with two experiments of N trials each (5,000 tasks with
tags, 3 agents, 4 models, named rewards, 1.5% errors; every trial with its own trajectory, ids
shaped as the store computes them: sha256 hex of the trajectory bytes and of the trial key) and 5
judge ratings per trial (1% UNSCORED with reasons, 10% cached). For each size it measures:

* the references, in the same run: in this process a ``count``/``avg`` scan of the ``trials``
  view for one experiment, and the plain read of every rating of both experiments (the ratings
  joined to their trials on the integer trial key and counted per criterion and verdict: the
  least work anything that compares verdicts does); as a whole process ``atif query`` of the
  ``trials`` scan (the floor of any ``atif`` command: start-up, import, opening the store);
* the library calls ``compare`` (N pairs: McNemar per criterion, bootstrap of reward, cost and
  duration, the first 100 changed pairs of each kind listed) and ``gate`` with a baseline, wall
  and CPU seconds;
* the whole processes ``atif compare A B --format json``, ``atif compare --format json
  --all-pairs`` (every changed pair written), ``atif compare`` (Markdown) and ``atif gate
  --baseline``, as a user runs them, wall seconds and peak RSS (``/usr/bin/time``, else the
  children's ``ru_maxrss``);
* ``build_report`` (whole experiment, ``by="tag"``), its Markdown, the HTML page (1,000 trials
  listed), up to 100,000 trials.

Then the growth per tenfold size (time at 10N / time at N: 10 is linear).

Sizes: full ``1000 10000 100000 1000000`` (generating the million-pair store takes several
minutes); ``--quick``: ``1000 10000``. Targets: ``compare`` and ``gate`` under 3 s each at
1,000,000 pairs, ``atif report`` under 5 s at 100,000 x 5.

Run from the repository root::

    python -m bench.report_bench                 # 1k, 10k, 100k, 1M pairs
    python -m bench.report_bench --quick         # 1k, 10k
    python -m bench.report_bench 20000 200000    # the sizes given
    python -m bench.report_bench 1000000 --store bench-1m.duckdb   # a store generate() made before
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atif.report import build_report, compare, gate, render_report_html, render_report_md
from atif.store import Store, migrations
from atif.store.keys import fill_missing, trial_key_sql

RATINGS_FLOOR = """
    SELECT r.criterion, r.verdict, count(*) AS n
    FROM rating_data r JOIN (SELECT trial_key FROM trial_data WHERE experiment IN ('bench-a', 'bench-b')) t
      USING (trial_key)
    GROUP BY ALL"""
"""The plain read every comparison of verdicts starts from: each rating of both experiments, counted."""

N_TASKS = 5000
CRITERIA = 5
TARGET_S = 3.0


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
        SELECT *, {trial_key_sql("id")} AS key FROM (
        SELECT e.name AS experiment, e.k, i,
               (hash(i, e.k, 1) % 10000) / 10000.0 AS u1,
               (hash(i, e.k, 2) % 10000) / 10000.0 AS u2,
               (hash(i, e.k, 3) % 10000) / 10000.0 AS u3,
               sha256('["' || e.name || '","task-' || (i % {N_TASKS}) || '","run-' || i || '",' || (i // {N_TASKS} + 1)
                      || ']') AS id,
               '{{"schema_version":"ATIF-v1.6","session_id":"' || e.name || '-' || i || '","agent":{{"name":"agent-'
               || (i % 3) || '","version":"1.0"}},"steps":[]}}' AS raw
        FROM (VALUES ('bench-a', 0), ('bench-b', 1)) e(name, k), range({n}) t(i));
        INSERT INTO trajectory_data (trajectory_id, raw, schema_version, agent_name, agent_version, model_name,
                                     step_count, n_bytes)
        SELECT sha256(raw), raw::BLOB,
               'ATIF-v1.6', 'agent-' || (i % 3), '1.0', 'model-' || (i % 4), 20, strlen(raw)
        FROM gen;
        INSERT INTO trial_data (trial_id, trial_key, experiment, task_name, epoch, source_trial_id, trajectory_id,
                                reward, rewards, steps, cost_usd, duration_seconds, input_tokens, output_tokens,
                                cached_tokens, error, metadata, record_hash, agent_name, model_name)
        SELECT id, key, experiment, 'task-' || (i % {N_TASKS}), i // {N_TASKS} + 1,
               'run-' || i, sha256(raw),
               round(least(1.0, u1 + 0.05 * k), 3),
               json_object('reward', round(least(1.0, u1 + 0.05 * k), 3), 'tests_passed', (u2 * 20)::INTEGER),
               10 + (u2 * 40)::INTEGER, round(0.01 + u3 * 0.5, 4), round(5 + u2 * 600, 2),
               (20000 + u3 * 80000)::BIGINT, (1000 + u1 * 4000)::BIGINT, (10000 + u3 * 40000)::BIGINT,
               CASE WHEN u2 < 0.005 THEN 'TimeoutError: agent exceeded 600 s'
                    WHEN u2 < 0.010 THEN 'RuntimeError: container exited with code 137'
                    WHEN u2 < 0.015 THEN 'ValueError: malformed tool call' END,
               '{{}}', sha256('r' || experiment || i), 'agent-' || (i % 3), 'model-' || (i % 4)
        FROM gen;
        INSERT INTO rating_data (trial_id, trial_key, criterion, verdict, reasoning, source, judge_model,
                                 prompt_tokens, completion_tokens, cost_usd, latency_ms, cached, error)
        SELECT g.id, g.key, 'criterion-' || c,
               CASE WHEN (hash(g.i, g.k, c, 9) % 1000) < 10 THEN 'UNSCORED'
                    WHEN (hash(g.i, g.k, c, 8) % 1000) / 1000.0 < 0.55 + 0.08 * c + 0.02 * g.k THEN 'YES'
                    ELSE 'NO' END,
               'Because step ' || (1 + c) || ' shows it.', 'judge', 'openai/gpt-4o-mini', 3000, 120,
               0.0006, 900.0, (hash(g.i, c) % 10) = 0,
               CASE WHEN (hash(g.i, g.k, c, 9) % 1000) < 10 THEN 'no verdict in the reply' END
        FROM gen g, range({CRITERIA}) r(c);
        DROP TABLE gen;
    """)
    fill_missing(con)  # the trial keys and rating cohorts the store's writers would have set
    con.close()
    return time.perf_counter() - t0


def timed(fn, repeat: int = 3) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best of ``repeat`` (wall, CPU) seconds of ``fn()``; CPU counts every thread of this process."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return best, best_cpu


TIME = shutil.which("time") and Path("/usr/bin/time").exists()


def cli(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) and exit status of ``atif ARGS`` in a fresh process."""
    cmd = [sys.executable, "-c", "from atif.cli import main; main()", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        if TIME:
            cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        wall = time.perf_counter() - t0
        if TIME:
            kib = int(rss_file.read().split()[-1])
        else:
            kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # gate exits 1 when a condition fails; an error (exit 1 too) prints "Error:".
    if proc.returncode not in (0, 1) or b"Error:" in proc.stderr:
        raise RuntimeError(f"atif {' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return wall, kib / 1024, proc.returncode


def best_cli(args: list[str], repeat: int) -> tuple[float, float]:
    """Best wall seconds and the largest peak RSS (MiB) of ``repeat`` runs of ``atif ARGS``."""
    runs = [cli(args) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def measure(n: int, work: Path, existing: Path | None = None) -> dict[str, float]:
    """Generate the store of ``n`` pairs (or use ``existing``, made by :func:`generate`) and time everything on it."""
    path = existing or work / f"bench-{n}.duckdb"
    if existing is None:
        gen_s = generate(path, n)
        print(f"\n== {n:,} pairs (2 x {n:,} trials x {CRITERIA} criteria generated in SQL in {gen_s:.1f} s) ==")
    else:
        print(f"\n== {n:,} pairs (2 x {n:,} trials x {CRITERIA} criteria, the store {existing}) ==")
    repeat = 3 if n <= 100_000 else 1
    out: dict[str, float] = {}
    with Store.open(path, read_only=True) as store:
        ref, ref_cpu = timed(lambda: store.read_one(
            "SELECT count(*), avg(reward), avg(cost_usd) FROM trials WHERE experiment = 'bench-b'"))
        floor, floor_cpu = timed(lambda: store.read(RATINGS_FLOOR), repeat)
        cmp_s, cmp_cpu = timed(lambda: compare(store, "bench-a", "bench-b"), repeat)
        gate_s, gate_cpu = timed(lambda: gate(store, "bench-b", min_pass={"*": 0.5}, baseline="bench-a"), repeat)
        result = compare(store, "bench-a", "bench-b")
        out.update(ref=ref, floor=floor, floor_cpu=floor_cpu, compare=cmp_s, compare_cpu=cmp_cpu, gate=gate_s,
                   gate_cpu=gate_cpu)
        if n <= 100_000:
            out["report"], _ = timed(lambda: build_report(store, "bench-b"))
            out["report_by_tag"], _ = timed(lambda: build_report(store, "bench-b", by="tag"))
            report = build_report(store, "bench-b")
            assert report["summary"]["n_trials"] == n and len(report["criteria"]) == CRITERIA
            out["markdown"], _ = timed(lambda: render_report_md(report))
            out["html"], _ = timed(lambda: render_report_html(store, "bench-b"), repeat=1)
    db = ["--db", str(path)]
    scan = "SELECT count(*), avg(reward), avg(cost_usd) FROM trials WHERE experiment = 'bench-b'"
    out["cli_ref"], out["cli_ref_rss"] = best_cli(["query", scan, *db], repeat)
    out["cli_compare"], out["cli_compare_rss"] = best_cli(
        ["compare", "bench-a", "bench-b", "--format", "json", "-o", str(work / "compare.json"), *db], repeat)
    out["cli_gate"], out["cli_gate_rss"] = best_cli(["gate", "-e", "bench-b", "--baseline", "bench-a", *db], repeat)
    out["cli_compare_md"], out["cli_compare_md_rss"] = best_cli(["compare", "bench-a", "bench-b", *db], repeat)
    out["cli_compare_all"], out["cli_compare_all_rss"] = best_cli(
        ["compare", "bench-a", "bench-b", "--format", "json", "--all-pairs", "-o", str(work / "all.json"), *db], 1)
    out["all_json_mib"] = (work / "all.json").stat().st_size / 2**20
    if existing is None:
        path.unlink()

    m = result["metrics"]
    print(f"  reference scan of trials (count/avg), in process {ref * 1000:9.1f} ms")
    print(f"  reference read of both experiments' ratings      {floor * 1000:9.1f} ms wall {floor_cpu:6.2f} s cpu")
    print(f"  compare (library)        {cmp_s:7.2f} s wall {cmp_cpu:7.2f} s cpu  ({cmp_s / floor:5.1f} x ratings read, "
          f"{cmp_s / ref:7.1f} x trials scan)")
    print(f"  gate --baseline (library) {gate_s:6.2f} s wall {gate_cpu:7.2f} s cpu  ({gate_s / floor:5.1f} x ratings read, "
          f"{gate_s / ref:7.1f} x trials scan)")
    print("  bootstrap resamples: " + ", ".join(f"{k} {v['resamples']} ({v['interval']})" for k, v in m.items()))
    print(f"  atif query (scan), whole process  {out['cli_ref']:6.2f} s   peak RSS {out['cli_ref_rss']:6.0f} MiB")
    print(f"  atif compare --format json        {out['cli_compare']:6.2f} s   peak RSS {out['cli_compare_rss']:6.0f} MiB"
          f"   ({out['cli_compare'] / out['cli_ref']:.1f} x atif query)")
    print(f"  atif compare (markdown)          {out['cli_compare_md']:6.2f} s   peak RSS "
          f"{out['cli_compare_md_rss']:6.0f} MiB   ({out['cli_compare_md'] / out['cli_ref']:.1f} x atif query)")
    print(f"  atif compare --all-pairs (json)   {out['cli_compare_all']:6.2f} s   peak RSS "
          f"{out['cli_compare_all_rss']:6.0f} MiB   ({out['cli_compare_all'] / out['cli_ref']:.1f} x atif query; "
          f"{out['all_json_mib']:.1f} MiB written)")
    print(f"  atif gate --baseline              {out['cli_gate']:6.2f} s   peak RSS {out['cli_gate_rss']:6.0f} MiB"
          f"   ({out['cli_gate'] / out['cli_ref']:.1f} x atif query)")
    if "report" in out:
        print(f"  build_report {out['report'] * 1000:8.1f} ms ({out['report'] / ref:5.1f} x reference), "
              f"--by tag {out['report_by_tag'] * 1000:8.1f} ms, markdown {out['markdown'] * 1000:6.1f} ms, "
              f"HTML page {out['html'] * 1000:8.1f} ms")
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure every size, print the figures and the growth per tenfold size."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, help="pairs per store (default: 1000 10000 100000 1000000)")
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 pairs only")
    ap.add_argument("--store", type=Path, help="measure this store (made by generate() with the one size given)")
    args = ap.parse_args(argv)
    if args.store is not None and len(args.sizes) != 1:
        ap.error("--store needs exactly one size: the pairs it holds")
    sizes = args.sizes or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000, 1_000_000])
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")
    figures: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="atif-report-bench-") as tmp:
        for n in sizes:
            figures[n] = measure(n, Path(tmp), args.store)
    print("\n== growth (time at the next size / time at this one; the sizes' ratio is linear) ==")
    keys = ("ref", "floor", "compare", "gate", "cli_compare", "cli_compare_md", "cli_compare_all", "cli_gate",
            "cli_compare_rss", "cli_compare_all_rss", "cli_gate_rss")
    print("  " + " " * 22 + "".join(f"{k:>20}" for k in keys))
    for lo, hi in zip(sizes, sizes[1:], strict=False):
        row = "".join(f"{figures[hi][k] / figures[lo][k]:20.2f}" for k in keys)
        print(f"  {lo:>9,} -> {hi:>9,} ({hi / lo:g}x){row}")
    top = sizes[-1]
    f = figures[top]
    verdict = "met" if f["compare"] < TARGET_S and f["gate"] < TARGET_S else "MISSED"
    print(f"\ntarget: compare and gate < {TARGET_S:g} s each at {top:,} pairs (library): {verdict} "
          f"(compare {f['compare']:.2f} s, gate {f['gate']:.2f} s; CLI {f['cli_compare']:.2f} s, {f['cli_gate']:.2f} s)")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
