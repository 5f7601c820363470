"""Store benchmark: upload (first and again) against Harbor's validator, metrics at scale, peak memory.

Figures (``ATIF_HARBOR_PYTHON=/tmp/harbor-venv/bin/python .venv/bin/python -m bench.store_bench
--trials 5000 --repeat 1 --memory-sizes 1000,10000 --metrics-trials 100000``; shared 2-core
machine at load average 5.4-5.7)::

    harbor model_validate_json (warm process)        2.03 s     (0.98 s CPU)
    atif upload DIR (whole process)                 17.13 s     292 trials/s   ratio harbor/atif  0.12
    atif.upload (library call)                      11.08 s     451 trials/s   ratio harbor/atif  0.18
    re-upload, all unchanged (whole process)         1.35 s   0.079 of the first upload (goal <= 0.10)
    re-upload, all unchanged (library call)          0.30 s   0.027 of the first upload
    atif upload DIR, CPU of all its processes        8.14 s                       ratio harbor/atif  0.12
    re-upload, CPU of all its processes              0.63 s   0.077 of the first upload's
    peak RSS: 1,000 trials 244 MiB, 10,000 trials 339 MiB

(more, and before/after, in ``docs/performance.md``).

Usage (from the repository root; Harbor's venv through ``ATIF_HARBOR_PYTHON``)::

    .venv/bin/python -m bench.store_bench [--quick] [--trials 5000] [--workers 0] [--metrics-trials 1000000]
                                          [--memory-sizes 1000,10000,50000] [--skip-memory]

Full sizes: 5,000 trials for the timings, peak memory at 1,000 / 10,000 / 50,000 trials, metrics
views over 1,000,000 trials. ``--quick`` (for ``make bench``): 500 trials, memory at 200 / 1,000,
metrics over 100,000; well under two minutes on an idle machine.

1. Generates N trials as converted output (``trials.jsonl`` + ``trajectories/<task>/<trial>.json``)
   with :mod:`bench.corpus`: one distinct trajectory per trial, chained from the real Harbor
   trajectories under ``fixtures/``, real id shapes, ~51 KB each.
2. Times, in one run and alternating (best of ``--repeat``):

   * Harbor's ``Trajectory.model_validate_json`` over the same trajectory files (read +
     validate, in one warm Harbor process; imports not counted);
   * ``atif upload DIR -e bench`` as a user runs it: the whole process, into a fresh store, then
     the same command again (every trial unchanged);
   * the library call ``atif.upload`` into a fresh store, then again.

   Ratios are Harbor's seconds / atif's (>= 1.0: storing costs no more than Harbor spends only
   validating), and the re-upload's seconds / the first upload's (goal <= 0.10). The whole
   processes are timed in wall seconds and in CPU seconds of all their processes (workers
   included), against Harbor's wall and CPU seconds. A re-upload knows a trajectory file by
   its stat only when the file was written more than two seconds before the first upload read
   it: at the full size the generation and the Harbor run leave most files so (as a user's
   later re-upload finds them), at the quick size most were written moments before and are
   read and hashed again.
3. Splits the upload's work into phases on a sample, so the bottleneck is visible.
4. Times ``SELECT * FROM experiment_metrics`` over M trials generated in SQL.
5. Peak RSS of ``atif upload`` (a fresh process, workers included) at each of ``--memory-sizes``:
   memory must follow the batch size, not the input size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import generate, harbor_time  # noqa: E402

ATIF_CLI = [sys.executable, "-c", "from atif.cli import main; main()"]

# Peak RSS of a child and its workers: RUSAGE_CHILDREN of a fresh wrapper process, so that runs
# measured earlier do not mask it.
RSS_WRAPPER = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.PIPE); print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.stderr.write(p.stderr.decode()[-2000:])"
)


def run_measured(cmd: list[str]) -> tuple[float, float | None, subprocess.CompletedProcess[bytes]]:
    """Wall seconds, CPU seconds of the whole process tree (None where ``/proc`` is missing), and the outcome.

    Worker processes start from a fork server, so they are no waited-for children of the
    command: their CPU time is polled from ``/proc`` (every 20 ms) for every process of the
    command's own session. Under load the CPU time says what the work costs, the wall time
    what share of the cores it got.
    """
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    cpu: dict[str, float] = {}
    proc_fs = Path("/proc").is_dir()
    out = err = b""
    while True:
        if proc_fs:
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    stat = (Path("/proc") / d / "stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[3]) == p.pid:  # session id: the command and every process it started
                    cpu[d] = (int(fields[11]) + int(fields[12])) / tick
        try:
            out, err = p.communicate(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            continue
    wall = time.perf_counter() - t0
    return wall, (sum(cpu.values()) if proc_fs else None), subprocess.CompletedProcess(cmd, p.returncode, out, err)


def cli_upload(src: Path, db: Path, workers: int | None, batch_size: int) -> tuple[float, float | None, dict[str, Any]]:
    """Wall and CPU seconds of ``atif upload`` as a whole process (workers included), and its JSON result."""
    cmd = [*ATIF_CLI, "upload", str(src), "-e", "bench", "--db", str(db), "--format", "json",
           "--batch-size", str(batch_size)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    wall, cpu, proc = run_measured(cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"atif upload failed: {proc.stderr.decode()[-2000:]}")
    return wall, cpu, json.loads(proc.stdout)


def library_upload(src: Path, db: Path, workers: int | None, batch_size: int) -> tuple[float, float, int, int]:
    """Wall seconds of ``atif.upload`` into a fresh store and of the same upload again; trials created, unchanged."""
    from atif import upload
    from atif.store import Store

    with Store(db) as store:
        t0 = time.perf_counter()
        first = upload([src], "bench", batch_size=batch_size, store=store, workers=workers)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = upload([src], "bench", batch_size=batch_size, store=store, workers=workers)
        rerun = time.perf_counter() - t1
    assert first.created_trials and not first.errors, first.errors[:3]
    assert again.unchanged_trials == first.created_trials, (again.unchanged_trials, first.created_trials)
    return wall, rerun, first.created_trials, again.unchanged_trials


def peak_memory(src: Path, db: Path, batch_size: int, workers: int | None) -> tuple[float, float]:
    """Seconds and peak RSS (MiB, the largest of the process and its workers) of ``atif upload``."""
    cmd = [*ATIF_CLI, "upload", str(src), "-e", "bench", "--db", str(db), "--format", "json",
           "--batch-size", str(batch_size)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *cmd], capture_output=True, text=True, check=False,
                          cwd=ROOT)
    dt = time.perf_counter() - t0
    code, rss = proc.stdout.split()
    if code != "0":
        raise RuntimeError(f"memory run failed: {proc.stderr[-2000:]}")
    return dt, int(rss) / 1024


def phases(files: list[Path], src: Path) -> dict[str, float]:
    """CPU seconds per 1,000 trials of each step of the upload, measured one step at a time."""
    from atif.schema.identity import canonical_json
    from atif.schema.validate import validate
    from atif.store.codec import encode_raw
    from atif.store.flatten import flatten, new_buffers
    from atif.store.ingest import trajectory_messages_equal
    from atif.store.writer import arrow_table
    from atif.trial import Trial

    sample = files[:200]
    lines = (src / "trials.jsonl").read_bytes().splitlines()[: len(sample)]
    clock = time.process_time
    out: dict[str, float] = {}
    t = clock()
    records = [orjson.loads(line) for line in lines]
    out["trial records (parse)"] = clock() - t
    t = clock()
    messages = [r.pop("messages", None) for r in records]
    for r in records:
        r.pop("trajectory", None)
        Trial.model_validate(r)
    out["trial records (check)"] = clock() - t
    t = clock()
    raws: list[Any] = [f.read_bytes() for f in sample]
    out["read"] = clock() - t
    t = clock()
    docs = [orjson.loads(r) for r in raws]
    out["parse (orjson)"] = clock() - t
    t = clock()
    for d in docs:
        hashlib.sha256(canonical_json(d)).hexdigest()
    for m in messages:
        hashlib.sha256(canonical_json(m)).hexdigest()
    out["canonical hashes"] = clock() - t
    t = clock()
    for m, d in zip(messages, docs, strict=True):
        trajectory_messages_equal(m, d)
    out["messages = trajectory?"] = clock() - t
    t = clock()
    for d in docs:
        validate(d, mode="strict")
    out["atif validate (strict)"] = clock() - t
    t = clock()
    steps, calls = new_buffers()
    for i, d in enumerate(docs):
        flatten(d, i, steps, calls)
    out["flatten"] = clock() - t
    t = clock()
    keys = [f"{i:064d}" for i in range(len(docs))]
    arrow_table("step_data", steps, keys)
    arrow_table("tool_call_data", calls, keys)
    out["arrow (steps, calls)"] = clock() - t
    t = clock()
    encode_raw(raws)
    out["zstd (writer thread)"] = clock() - t
    scale = 1000 / len(sample)
    return {k: v * scale for k, v in out.items()}


def build_metrics_store(n: int, db: Path) -> float:
    """A store of ``n`` distinct trials made in SQL, shaped as the store really holds them; returns the seconds taken.

    10 experiments, 1,000 tasks (with tags), 4 agents x 4 models, 3 criteria and 3 ratings per trial.
    Every trial has its own small trajectory; trajectory ids are sha256 of the trajectory bytes and
    trial ids are :func:`atif.schema.identity.trial_id_of` (sha256 hex of ``[experiment, task,
    source id, epoch]``, 64 characters) computed in SQL, so the joins run on ids of the real shape.
    """
    import duckdb

    from atif.store import Store
    from atif.store.keys import trial_key_sql

    Store(db).close()
    con = duckdb.connect(str(db))
    t = time.perf_counter()
    con.execute("BEGIN")
    con.execute("INSERT INTO collections (name) VALUES ('c')")
    con.execute("INSERT INTO criterion_sets (name) VALUES ('cs')")
    con.execute("INSERT INTO criteria (criterion_set, label, question, kind, position) "
                "SELECT 'cs', 'crit-' || i, 'q', 'llm', i FROM range(3) r(i)")
    con.execute("INSERT INTO experiments (name, collection, criterion_set) "
                "SELECT 'exp-' || i, 'c', 'cs' FROM range(10) r(i)")
    con.execute("INSERT INTO tasks (collection, name, tags) SELECT 'c', 'task-' || i, ['tag-' || (i % 7)] "
                "FROM range(1000) r(i)")
    # One distinct trajectory per trial: its bytes name the session, agent and model.
    con.execute(f"""
        CREATE TEMP TABLE gen AS
        SELECT i, 'exp-' || (i % 10) AS experiment, 'task-' || (i % 1000) AS task_name,
               i // 10000 + 1 AS epoch, 'agent-' || (i % 4) AS agent_name, 'model-' || ((i // 4) % 4) AS model_name,
               ('{{"schema_version":"ATIF-v1.6","session_id":"run-' || i || '","agent":{{"name":"agent-' || (i % 4)
                || '","version":"1.0","model_name":"model-' || ((i // 4) % 4) || '"}},"steps":[{{"step_id":1,'
                || '"source":"user","message":"Solve task ' || (i % 1000) || '"}}]}}') AS raw
        FROM range({n}) r(i)""")
    con.execute("""
        INSERT INTO trajectory_data (trajectory_id, raw, schema_version, agent_name, agent_version, model_name,
                                     step_count, n_bytes, raw_id)
        SELECT sha256(raw), raw::BLOB, 'ATIF-v1.6', agent_name, '1.0', model_name, 1, strlen(raw), sha256(raw)
        FROM gen""")
    con.execute(f"""
        INSERT INTO trial_data (trial_id, experiment, task_name, epoch, source_trial_id, trajectory_id, raw_id,
                                reward, steps, cost_usd, duration_seconds, input_tokens, output_tokens,
                                cached_tokens, error, record_hash, agent_name, model_name, trial_key)
        SELECT id, experiment, task_name, epoch, 'run-' || i, sha256(raw), sha256(raw),
               (hash(i) % 1000) / 1000.0, 20, (hash(i) % 500) / 100000.0, (hash(i * 7) % 600)::DOUBLE,
               20000 + (i % 5000), 2000, 1500, CASE WHEN i % 50 = 0 THEN 'TimeoutError' END,
               sha256('record-' || i), agent_name, model_name, {trial_key_sql('id')}
        FROM (SELECT *, sha256('["' || experiment || '","' || task_name || '","run-' || i || '",' || epoch || ']') AS id
              FROM gen)""")
    # The integer trial key and the trial's cohort, as the store's writers write them.
    con.execute(f"""
        INSERT INTO rating_data (trial_id, criterion, verdict, source, trial_key, experiment, agent_name, model_name)
        SELECT id, 'crit-' || c, CASE WHEN hash(i + c) % 3 = 0 THEN 'NO' ELSE 'YES' END, 'judge', {trial_key_sql('id')},
               experiment, agent_name, model_name
        FROM (SELECT *, sha256('["' || experiment || '","' || task_name || '","run-' || i || '",' || epoch || ']') AS id
              FROM gen), range(3) k(c)""")
    con.execute("DROP TABLE gen")
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    build = time.perf_counter() - t
    con.close()
    return build


METRICS_REFERENCE = """
    SELECT (SELECT list((experiment, n, reward, cost)) FROM (
                SELECT experiment, count(*) AS n, avg(reward) AS reward, sum(cost_usd) AS cost
                FROM trial_data GROUP BY experiment)),
           (SELECT list((criterion, n_yes)) FROM (
                SELECT criterion, count(*) FILTER (WHERE verdict = 'YES') AS n_yes
                FROM rating_data GROUP BY criterion))"""
"""The floor of any metrics view: one scan and aggregate of the same trials and ratings, no join."""


def metrics_at_scale(n: int, work: Path) -> dict[str, float]:
    """Seconds of the metrics views over ``n`` trials (see :func:`build_metrics_store`), and of the reference.

    The reference (:data:`METRICS_REFERENCE`) reads the same rows in the same run; ``<view> ratio``
    is the view's time over it.
    """

    from atif.store import Store

    db = work / "metrics.duckdb"
    build = build_metrics_store(n, db)
    out = {"build (s)": build}
    with Store(db, read_only=True) as store:
        for name, sql in (("reference", METRICS_REFERENCE), ("experiment_metrics", "SELECT * FROM experiment_metrics"),
                          ("criterion_metrics", "SELECT * FROM criterion_metrics")):
            best = best_cpu = float("inf")
            for _ in range(3):
                t, c = time.perf_counter(), time.process_time()
                _, rows = store.query(sql)
                best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
            out[name] = best
            out[f"{name} cpu"] = best_cpu
            out[f"{name} rows"] = len(rows)
    for view in ("experiment_metrics", "criterion_metrics"):
        out[f"{view} ratio"] = out[view] / out["reference"]
    db.unlink()
    return out


def main() -> None:
    """Run every part and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5_000)
    p.add_argument("--quick", action="store_true", help="small sizes for make bench (see the module docstring)")
    p.add_argument("--metrics-trials", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--workers", type=int, default=None, help="--workers of atif upload (default: automatic)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--memory-sizes", default="1000,10000,50000")
    # The Python 3.12 venv with harbor that .ci/run builds, unless ATIF_HARBOR_PYTHON names another.
    p.add_argument("--harbor-python", default=os.environ.get("ATIF_HARBOR_PYTHON", ".harbor-venv/bin/python"))
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--json", action="store_true", help="Print the figures as JSON at the end.")
    args = p.parse_args()
    if args.quick:
        args.trials, args.repeat, args.memory_sizes = 500, 1, "200,1000"
        args.metrics_trials = min(args.metrics_trials, 100_000)

    figures: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="atif-store-bench-") as tmp:
        work = Path(tmp)
        src = work / "run"
        t = time.perf_counter()
        files = generate(src, args.trials)
        size = sum(f.stat().st_size for f in files)
        print(f"generated {args.trials} distinct trials ({size / 1e6:.0f} MB of trajectories, "
              f"{size / len(files) / 1e3:.0f} KB each) in {time.perf_counter() - t:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}")

        print(f"\n== upload vs Harbor's Trajectory.model_validate_json (best of {args.repeat}, alternating) ==")
        harbor: list[tuple[float, float]] = []
        cli: list[float] = []
        cli_again: list[float] = []
        cli_cpu: list[float] = []
        cli_again_cpu: list[float] = []
        lib: list[float] = []
        lib_again: list[float] = []
        for k in range(args.repeat):
            h = harbor_time(args.harbor_python, files, work)
            if h is not None:
                harbor.append(h)
            db = work / f"cli-{k}.duckdb"
            wall, cpu, out = cli_upload(src, db, args.workers, args.batch_size)
            assert out["created_trials"] == args.trials, out
            again, again_cpu, out = cli_upload(src, db, args.workers, args.batch_size)
            assert out["unchanged_trials"] == args.trials, out
            cli.append(wall)
            cli_again.append(again)
            if cpu is not None and again_cpu is not None:
                cli_cpu.append(cpu)
                cli_again_cpu.append(again_cpu)
            db.unlink()
            db = work / f"lib-{k}.duckdb"
            first, rerun, _, _ = library_upload(src, db, args.workers, args.batch_size)
            lib.append(first)
            lib_again.append(rerun)
            db.unlink()
        rows = [("atif upload DIR (whole process)", min(cli)), ("atif.upload (library call)", min(lib))]
        h_wall = min(w for w, _ in harbor) if harbor else None
        if h_wall is not None:
            print(f"  {'harbor model_validate_json (warm process)':<44} {h_wall:7.2f} s")
        for label, secs in rows:
            ratio = f"   ratio harbor/atif {h_wall / secs:5.2f}" if h_wall else ""
            print(f"  {label:<44} {secs:7.2f} s  {args.trials / secs:6.0f} trials/s{ratio}")
        print(f"  {'re-upload, all unchanged (whole process)':<44} {min(cli_again):7.2f} s   "
              f"{min(cli_again) / min(cli):.3f} of the first upload (goal <= 0.10)")
        print(f"  {'re-upload, all unchanged (library call)':<44} {min(lib_again):7.2f} s   "
              f"{min(lib_again) / min(lib):.3f} of the first upload")
        if cli_cpu:
            h_cpu = min(c for _, c in harbor) if harbor else None
            ratio = f"   ratio harbor/atif {h_cpu / min(cli_cpu):5.2f}" if h_cpu else ""
            if h_cpu:
                print(f"  {'harbor CPU seconds':<44} {h_cpu:7.2f} s")
            print(f"  {'atif upload DIR, CPU of all its processes':<44} {min(cli_cpu):7.2f} s{' ' * 20}{ratio}")
            print(f"  {'re-upload, CPU of all its processes':<44} {min(cli_again_cpu):7.2f} s   "
                  f"{min(cli_again_cpu) / min(cli_cpu):.3f} of the first upload's")
            figures.update(upload_cli_cpu=min(cli_cpu), reupload_cli_cpu=min(cli_again_cpu), harbor_cpu=h_cpu)
        if h_wall is None:
            print(f"  harbor not found at {args.harbor_python!r} (set ATIF_HARBOR_PYTHON): no ratio")
        figures.update(upload_cli=min(cli), upload_lib=min(lib), reupload_cli=min(cli_again),
                       reupload_lib=min(lib_again), harbor=h_wall)

        print("\n== where the upload's CPU time goes (seconds per 1,000 trajectories, one step at a time, "
              "one process) ==")
        ph = phases(files, src)
        for k, v in ph.items():
            print(f"  {k:<24} {v:6.3f}")
        figures["phases_per_1000"] = ph

        print(f"\n== metrics views over {args.metrics_trials:,} trials (best of 3) ==")
        m = metrics_at_scale(args.metrics_trials, work)
        print(f"  generated in SQL in {m['build (s)']:.1f} s")
        print(f"  experiment_metrics {m['experiment_metrics']:.3f} s wall, {m['experiment_metrics cpu']:.3f} s cpu "
              f"({m['experiment_metrics rows']} rows)   (goal < 1 s)")
        print(f"  criterion_metrics  {m['criterion_metrics']:.3f} s wall, {m['criterion_metrics cpu']:.3f} s cpu "
              f"({m['criterion_metrics rows']} rows)")
        figures["metrics"] = m

        if not args.skip_memory:
            print(f"\n== peak RSS of atif upload (a fresh process, its workers included), batch {args.batch_size} ==")
            mem = {}
            for n in [int(x) for x in args.memory_sizes.split(",") if x]:
                part = work / f"mem-{n}"
                if n == args.trials:
                    part = src
                else:
                    generate(part, n, seed=n)
                db = work / f"mem-{n}.duckdb"
                dt, rss = peak_memory(part, db, args.batch_size, args.workers)
                mem[n] = rss
                print(f"  {n:>7} trials   peak RSS {rss:6.0f} MiB   ({dt:.1f} s)")
                db.unlink()
                if part != src:
                    shutil.rmtree(part)
            figures["peak_rss_mib"] = mem
        print(f"\nthis process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
              f"load average after {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
