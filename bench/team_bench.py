"""Team store benchmark: DuckLake over PostgreSQL against the DuckDB file, in the same run.

Usage (in a venv with ``atif[team]``, against a PostgreSQL server the bench may create databases on;
``--pg`` defaults to ``$ATIF_TEST_PG``)::

    .venv-team/bin/python -m bench.team_bench --pg "host=127.0.0.1 port=5432 user=atif password=..." \\
        [--quick] [--trials 5000] [--metrics-trials 100000] [--writers 4] [--per-writer 1000]

Full sizes (the defaults): 5,000 trials uploaded, metrics over 100,000 trials, 4 writers x 1,000
trials. ``--quick`` (for ``make bench``): 500 trials, metrics over 10,000, 2 writers x 200; about
a minute on 2 cores. Without a PostgreSQL (no ``--pg``, no ``ATIF_TEST_PG``) or without the team
extra it prints why and exits 0, so that ``make bench`` passes over it.

1. Upload of ``--trials`` trials (built in memory, 3-7 steps each) into a new file store and into
   a new team store: the figure is ``team seconds / file seconds``.
2. ``SELECT * FROM experiment_metrics`` over ``--metrics-trials`` trials (made in SQL in a file
   store, then moved with ``copy_store`` into a team store): ``team / file``, best of 3.
3. Aggregate upload throughput on the team store of ``--writers`` processes each uploading
   ``--per-writer`` different trials at once, against one process uploading ``--per-writer``:
   ``(writers x per-writer / wall seconds) / (per-writer / seconds of one)``.

Each team store is a fresh PostgreSQL database (``createdb``; dropped at the end) and data folder.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def converted(prefix: str, n: int) -> list[Any]:
    """``n`` distinct trials with their trajectories, as an upload's converter hands them over."""
    from atif.trial import Converted, Trial

    out = []
    for i in range(n):
        steps: list[dict[str, Any]] = [{"step_id": 1, "source": "user", "message": f"Please do {prefix}-{i}."}]
        for k in range(2 + i % 5):
            cid = f"c{k}"
            steps.append({
                "step_id": len(steps) + 1, "source": "agent", "model_name": "m", "message": f"step {k} of {i}",
                "tool_calls": [{"tool_call_id": cid, "function_name": "bash", "arguments": {"cmd": f"ls {k}"}}],
                "observation": {"results": [{"source_call_id": cid, "content": "x" * (200 + 37 * k)}]},
                "metrics": {"prompt_tokens": 1000 + k, "completion_tokens": 50, "cost_usd": 0.001},
            })
        doc = {"schema_version": "ATIF-v1.6", "session_id": f"{prefix}-{i}",
               "agent": {"name": "bench-agent", "version": "1", "model_name": "m"}, "steps": steps}
        raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        trial = Trial(task_name=f"task-{i % 200}", trial_id=f"{prefix}-{i}", reward=float(i % 2), trajectory=doc)
        out.append(Converted(trajectory=doc, trial=trial, trial_key=f"{prefix}-{i}", source=f"{prefix}-{i}", raw=raw))
    return out


def upload_seconds(target: str, data_path: Path | None, prefix: str, n: int) -> float:
    from atif.store import Store

    items = converted(prefix, n)
    t = time.perf_counter()
    with Store(target, data_path=data_path) as store:
        result = store.ingest(items, "bench", create_missing_tasks=True)
    elapsed = time.perf_counter() - t
    assert result.created_trials + result.unchanged_trials == n and not result.errors, result.errors[:3]
    return elapsed


class Postgres:
    """Fresh databases on the server named by a libpq connection string (host, port, user)."""

    def __init__(self, conn: str) -> None:
        self.params = dict(p.split("=", 1) for p in conn.split())
        self.made: list[str] = []

    def new(self) -> str:
        name = f"atif_bench_{uuid.uuid4().hex[:10]}"
        proc = subprocess.run([_pg_tool("createdb"), *self._args(), name], env=self._env(), capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"team_bench: createdb failed: {proc.stderr.strip()}")
        self.made.append(name)
        return "ducklake:postgres:" + " ".join(f"{k}={v}" for k, v in {**self.params, "dbname": name}.items())

    def drop_all(self) -> None:
        for name in self.made:
            subprocess.run([_pg_tool("dropdb"), *self._args(), name], env=self._env(), capture_output=True,
                           check=False)

    def _env(self) -> dict[str, str]:
        pw = self.params.get("password")
        return dict(os.environ, PGPASSWORD=pw) if pw else dict(os.environ)

    def _args(self) -> list[str]:
        p = self.params
        return ["-h", p.get("host", "localhost"), "-p", p.get("port", "5432"), "-U", p.get("user", "postgres")]


def _pg_tool(name: str) -> str:
    """``createdb`` / ``dropdb``: on the PATH, else from the newest PostgreSQL of a Debian install."""
    found = shutil.which(name)
    if found:
        return found
    dirs = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return dirs[-1] if dirs else name


def team_extra_missing() -> str | None:
    """Why this interpreter cannot open a team store (None when it can)."""
    try:
        import duckdb_extension_ducklake  # noqa: F401
        import duckdb_extension_postgres  # noqa: F401
    except ImportError:
        return f"the team extra is not installed in {sys.executable} (pip install -e '.[team]')"
    return None


def metrics_seconds(n: int, work: Path, target: str) -> tuple[float, float]:
    """Best-of-3 seconds of ``experiment_metrics`` over ``n`` trials: (file store, team store).

    The same data as :func:`bench.store_bench.metrics_at_scale` builds.
    """
    from atif.store import Store, copy_store
    from bench.store_bench import build_metrics_store

    db = work / "metrics.duckdb"
    build_metrics_store(n, db)
    data = work / "lake-metrics"
    with Store(db, read_only=True) as src, Store(target, data_path=data) as dst:
        copy_store(src, dst)
    out = []
    for t, dp in ((str(db), None), (target, data)):
        with Store(t, read_only=True, data_path=dp) as store:
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                store.query("SELECT * FROM experiment_metrics")
                best = min(best, time.perf_counter() - start)
            out.append(best)
    return out[0], out[1]


def writers_seconds(target: str, data_path: Path, writers: int, per_writer: int) -> float:
    """Wall seconds of ``writers`` processes each uploading ``per_writer`` different trials at once."""
    from atif.store import Store

    Store(target, data_path=data_path).close()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "bench.team_bench", "--writer", target, str(data_path)]
    t = time.perf_counter()
    procs = [subprocess.Popen([*cmd, f"w{k}", str(per_writer)], env=env, cwd=ROOT) for k in range(writers)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a writer failed ({p.returncode})")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("ATIF_TEST_PG"),
                    help="libpq connection string of a server to create databases on (default: $ATIF_TEST_PG)")
    ap.add_argument("--quick", action="store_true", help="small sizes for make bench (see the module docstring)")
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--metrics-trials", type=int, default=100_000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--per-writer", type=int, default=1000)
    ap.add_argument("--writer", nargs=4, metavar=("TARGET", "DATA_PATH", "PREFIX", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        target, data_path, prefix, n = args.writer
        upload_seconds(target, Path(data_path), prefix, int(n))
        return
    if args.quick:
        args.trials, args.metrics_trials, args.writers, args.per_writer = 500, 10_000, 2, 200
    if not args.pg:
        print("team_bench: skipped, no PostgreSQL named (--pg DSN or ATIF_TEST_PG)")
        return
    missing = team_extra_missing()
    if missing:
        print(f"team_bench: skipped, {missing}")
        return
    import atif

    print(f"atif from {Path(atif.__file__).parent}; load average {os.getloadavg()[0]:.2f}", flush=True)
    pg = Postgres(args.pg)
    work = Path(tempfile.mkdtemp(prefix="atif-team-bench-"))
    try:
        file_s = upload_seconds(str(work / "up.duckdb"), None, "f", args.trials)
        team_s = upload_seconds(pg.new(), work / "lake-up", "t", args.trials)
        print(f"upload {args.trials} trials: file {file_s:.2f} s ({args.trials / file_s:.0f}/s), "
              f"team {team_s:.2f} s ({args.trials / team_s:.0f}/s)   team/file = {team_s / file_s:.2f}", flush=True)
        mf, mt = metrics_seconds(args.metrics_trials, work, pg.new())
        print(f"experiment_metrics over {args.metrics_trials} trials: file {mf:.3f} s, team {mt:.3f} s   "
              f"team/file = {mt / mf:.2f}", flush=True)
        one = writers_seconds(pg.new(), work / "lake-w1", 1, args.per_writer)
        many = writers_seconds(pg.new(), work / "lake-wn", args.writers, args.per_writer)
        ratio = (args.writers * args.per_writer / many) / (args.per_writer / one)
        print(f"team upload, {args.writers} writers x {args.per_writer} trials: {many:.2f} s wall vs 1 writer "
              f"{one:.2f} s   aggregate throughput {args.writers} vs 1 = {ratio:.2f}x")
    finally:
        pg.drop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
