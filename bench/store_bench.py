"""Store benchmark: upload throughput against Harbor's validator, metrics at scale, peak memory.

Usage::

    .venv/bin/python bench/store_bench.py [--trials 10000] [--steps 20] [--metrics-trials 1000000]
                                          [--harbor-python .harbor-venv/bin/python] [--skip-memory]

1. Generates N trials of about S steps each as converted output (``trials.jsonl`` +
   ``trajectories/<task>/<n>.json``).
2. Times Harbor's ``Trajectory.model_validate_json`` over the same trajectory files (read +
   validate, in a Harbor venv, as a subprocess) and ``Store.upload`` of the folder in this
   process (read, parse, hash, validate, flatten, insert, commit), best of ``--repeat`` runs,
   alternating. The figure is ``harbor seconds / upload seconds``: 1.0 means storing costs no
   more than Harbor spends only validating.
3. Splits the upload's work into phases on a sample, so the bottleneck is visible.
4. Times ``SELECT * FROM experiment_metrics`` over M trials generated in SQL.
5. Measures the peak RSS of an upload (in a fresh process) per batch size, and for half the
   input, to show that memory follows the batch size rather than the input size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HARBOR_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from harbor.models.trajectories import Trajectory
    files = [Path(line) for line in Path(sys.argv[1]).read_text().splitlines()]
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        Trajectory.model_validate_json(f.read_bytes())
    print(time.perf_counter() - t0, time.process_time() - c0)
    """
)

# Peak RSS from /proc (VmHWM): ru_maxrss of a child started from a big parent starts at the
# parent's high-water mark on Linux, which would hide the child's own peak.
MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, time, tracemalloc
    sys.path.insert(0, sys.argv[4])
    from atif import upload
    from atif.store import Store

    def peak_kib():
        try:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    trace = sys.argv[5] == "1"
    if trace:
        tracemalloc.start()
    with Store(sys.argv[1]) as store:
        t = time.perf_counter()
        r = upload([sys.argv[2]], "bench", batch_size=int(sys.argv[3]), store=store)
        dt = time.perf_counter() - t
    py_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    print("RESULT", r.created_trials, dt, peak_kib(), py_peak)
    """
)

WORDS = ("the", "test", "fails", "because", "module", "import", "error", "fix", "patch", "file", "run", "again",
         "passes", "check", "output", "value", "config", "path", "line", "function")


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def make_trajectory(i: int, n_steps: int, rng: random.Random) -> dict[str, Any]:
    """A realistic agent trajectory: a user task, then agent steps with one tool call and its result each."""
    steps: list[dict[str, Any]] = [{
        "step_id": 1, "timestamp": "2026-01-01T00:00:00Z", "source": "user",
        "message": f"Task {i}: " + _text(rng, 60),
    }]
    for s in range(2, n_steps + 1):
        cid = f"call_{i}_{s}"
        failed = rng.random() < 0.15
        steps.append({
            "step_id": s,
            "timestamp": f"2026-01-01T00:{s // 60:02d}:{s % 60:02d}Z",
            "source": "agent",
            "model_name": "gpt-4o-mini",
            "message": _text(rng, rng.randint(10, 60)),
            "reasoning_content": _text(rng, rng.randint(0, 80)),
            "tool_calls": [{"tool_call_id": cid, "function_name": rng.choice(["bash", "edit", "read"]),
                            "arguments": {"command": _text(rng, 6), "timeout": 30}}],
            "observation": {"results": [{
                "source_call_id": cid,
                "content": ("Traceback (most recent call last):\n" if failed else "") + _text(rng, rng.randint(20, 200)),
            }]},
            "metrics": {"prompt_tokens": 1000 + 50 * s, "completion_tokens": rng.randint(20, 200), "cached_tokens": 800,
                        "cost_usd": round(rng.uniform(0.0005, 0.003), 6)},
        })
    return {
        "schema_version": "ATIF-v1.6",
        "session_id": f"session-{i}",
        "agent": {"name": "bench-agent", "version": "1.0", "model_name": "gpt-4o-mini"},
        "steps": steps,
        "final_metrics": {
            "total_prompt_tokens": sum(st.get("metrics", {}).get("prompt_tokens", 0) for st in steps),
            "total_completion_tokens": sum(st.get("metrics", {}).get("completion_tokens", 0) for st in steps),
            "total_steps": len(steps),
        },
    }


def generate(out: Path, n: int, n_steps: int) -> list[Path]:
    """Write converted output with ``n`` trials; return the trajectory files.

    Records look like ``atif convert`` output: totals from the trajectory and the final
    conversation as OpenAI-format ``messages``.
    """
    from atif.trial import trajectory_messages, trajectory_totals

    rng = random.Random(20261122)
    files = []
    lines = []
    for i in range(n):
        task = f"task-{i % 500:03d}"
        rel = f"trajectories/{task}/{i:06d}.json"
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = make_trajectory(i, n_steps, rng)
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        files.append(path)
        lines.append(orjson.dumps({
            "task_name": task, "trial_id": f"trial-{i}", "trajectory": rel, "epoch": 1 + i // 500 % 3,
            "reward": round(rng.random(), 3), "duration_seconds": round(rng.uniform(5, 600), 2),
            **trajectory_totals(doc),
            "messages": trajectory_messages(doc),
            "metadata": {"source_format": "bench", "source_path": f"runs/{i:06d}"},
        }))
    (out / "trials.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return files


def harbor_time(python: str, files: list[Path], work: Path) -> tuple[float, float] | None:
    """Wall and CPU seconds Harbor needs to read and validate every file, or None without Harbor."""
    if not Path(python).exists():
        return None
    listing = work / "files.txt"
    listing.write_text("\n".join(str(f) for f in files))
    proc = subprocess.run([python, "-c", HARBOR_SCRIPT, str(listing)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  harbor failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    wall, cpu = proc.stdout.split()
    return float(wall), float(cpu)


def upload_time(src: Path, work: Path, batch_size: int) -> tuple[float, float, Any]:
    """Wall and CPU seconds of one upload into a fresh store."""
    from atif import upload
    from atif.store import Store

    db = work / f"upload-{time.monotonic_ns()}.duckdb"
    with Store(db) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        result = upload([src], "bench", batch_size=batch_size, store=store)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t1 = time.perf_counter()
        again = upload([src], "bench", batch_size=batch_size, store=store)
        rerun = time.perf_counter() - t1
    assert result.created_trials and not result.errors, result.errors[:3]
    assert again.unchanged_trials == result.created_trials
    db.unlink()
    return wall, cpu, (result, rerun)


def phases(files: list[Path], src: Path) -> dict[str, float]:
    """CPU seconds per 1,000 trials of each step of the upload, measured one step at a time."""
    import zstandard

    from atif.schema.identity import canonical_json
    from atif.schema.validate import validate
    from atif.store.flatten import flatten, new_buffers
    from atif.store.ingest import trajectory_messages_equal
    from atif.store.writer import arrow_table
    from atif.trial import Trial

    sample = files[:1000]
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
    for m, d in zip(messages, docs):
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
    zstandard.ZstdCompressor(level=3).multi_compress_to_buffer(raws, threads=1)
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
    con.execute("""
        INSERT INTO trial_data (trial_id, experiment, task_name, epoch, source_trial_id, trajectory_id, raw_id,
                                reward, steps, cost_usd, duration_seconds, input_tokens, output_tokens,
                                cached_tokens, error, record_hash)
        SELECT sha256('["' || experiment || '","' || task_name || '","run-' || i || '",' || epoch || ']'),
               experiment, task_name, epoch, 'run-' || i, sha256(raw), sha256(raw),
               (hash(i) % 1000) / 1000.0, 20, (hash(i) % 500) / 100000.0, (hash(i * 7) % 600)::DOUBLE,
               20000 + (i % 5000), 2000, 1500, CASE WHEN i % 50 = 0 THEN 'TimeoutError' END,
               sha256('record-' || i)
        FROM gen""")
    con.execute("""
        INSERT INTO rating_data (trial_id, criterion, verdict, source)
        SELECT sha256('["' || experiment || '","' || task_name || '","run-' || i || '",' || epoch || ']'),
               'crit-' || c, CASE WHEN hash(i + c) % 3 = 0 THEN 'NO' ELSE 'YES' END, 'judge'
        FROM gen, range(3) k(c)""")
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


def peak_memory(src: Path, work: Path, batch_size: int, trace: bool) -> tuple[int, float, float, float]:
    """Trials stored, seconds, peak RSS (MiB) and peak Python heap (MiB, tracemalloc) of one upload."""
    db = work / f"mem-{batch_size}-{time.monotonic_ns()}.duckdb"
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(db), str(src), str(batch_size), str(ROOT), "1" if trace else "0"],
        capture_output=True, text=True, check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory run failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    _, n, dt, rss_kib, py_peak = lines[-1].split()
    db.unlink()
    return int(n), float(dt), int(rss_kib) / 1024, int(py_peak) / 1048576


def main() -> None:
    """Run every part and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--metrics-trials", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeat", type=int, default=2)
    # The Python 3.12 venv with harbor that .ci/run builds, unless ATIF_HARBOR_PYTHON names another.
    p.add_argument("--harbor-python", default=os.environ.get("ATIF_HARBOR_PYTHON", ".harbor-venv/bin/python"))
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--json", action="store_true", help="Print the figures as JSON at the end.")
    args = p.parse_args()

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="atif-store-bench-") as tmp:
        work = Path(tmp)
        src = work / "run"
        t = time.perf_counter()
        files = generate(src, args.trials, args.steps)
        size = sum(f.stat().st_size for f in files)
        print(f"generated {args.trials} trials x {args.steps} steps ({size / 1048576:.0f} MiB of trajectories) "
              f"in {time.perf_counter() - t:.1f} s")

        print("\n== upload vs Harbor's Trajectory.model_validate_json (best of "
              f"{args.repeat}, alternating) ==")
        harbor: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        last: Any = None
        for _ in range(args.repeat):
            h = harbor_time(args.harbor_python, files, work)
            if h is not None:
                harbor.append(h)
            wall, cpu, last = upload_time(src, work, args.batch_size)
            ours.append((wall, cpu))
        up_wall, up_cpu = min(w for w, _ in ours), min(c for _, c in ours)
        print(f"  atif upload     {up_wall:7.2f} s wall  {up_cpu:7.2f} s cpu   "
              f"{args.trials / up_wall:8.0f} trials/s")
        print(f"  re-upload (all unchanged) {last[1]:.2f} s")
        figures.update(upload_wall=up_wall, upload_cpu=up_cpu, reupload_wall=last[1])
        if harbor:
            h_wall, h_cpu = min(w for w, _ in harbor), min(c for _, c in harbor)
            print(f"  harbor validate {h_wall:7.2f} s wall  {h_cpu:7.2f} s cpu   {args.trials / h_wall:8.0f} files/s")
            print(f"  ratio (harbor / upload): {h_wall / up_wall:.2f} wall, {h_cpu / up_cpu:.2f} cpu   (goal >= 1.0)")
            figures.update(harbor_wall=h_wall, harbor_cpu=h_cpu, ratio_wall=h_wall / up_wall,
                           ratio_cpu=h_cpu / up_cpu)
        else:
            print(f"  harbor not found at {args.harbor_python}: no ratio")

        print("\n== where the upload's CPU time goes (seconds per 1,000 trajectories, one step at a time) ==")
        ph = phases(files, src)
        for k, v in ph.items():
            print(f"  {k:<24} {v:6.3f}")
        per_1000 = up_cpu / args.trials * 1000
        print(f"  {'whole upload':<24} {per_1000:6.3f}   (both threads; the rest: batching, queries, DuckDB insert, "
              "commit and checkpoints)")
        if harbor:
            h1000 = h_cpu / args.trials * 1000
            print(f"  {'harbor read + validate':<24} {h1000:6.3f}   -> atif validate alone is "
                  f"{ph['atif validate (strict)'] / h1000:.2f}x Harbor, parse + validate "
                  f"{(ph['parse (orjson)'] + ph['atif validate (strict)']) / h1000:.2f}x")
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
            print(f"\n== peak memory of an upload in a fresh process ({args.trials} trials unless noted) ==")
            half = work / "half"
            half.mkdir()
            lines = (src / "trials.jsonl").read_bytes().splitlines()
            (half / "trials.jsonl").write_bytes(b"\n".join(lines[: len(lines) // 2]) + b"\n")
            (half / "trajectories").symlink_to(src / "trajectories")
            mem = {}
            runs = [("batch 100", src, 100), ("batch 500", src, 500), ("batch 2000", src, 2000),
                    (f"batch 500, {args.trials // 2} trials", half, 500)]
            for label, path, bs in runs:
                n, dt, rss, _ = peak_memory(path, work, bs, trace=False)
                _, _, _, py = peak_memory(path, work, bs, trace=True)
                mem[label] = {"rss_mib": rss, "python_heap_mib": py}
                print(f"  {label:<28} peak RSS {rss:6.0f} MiB   python heap (tracemalloc) {py:6.1f} MiB   "
                      f"({n} trials in {dt:.1f} s)")
            figures["peak_memory"] = mem
        print(f"\nthis process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
