"""Start-up of the everyday ``atif`` commands, as whole processes, against Python and DuckDB alone.

Each command runs as a user runs it (the ``atif`` console script of this venv, a fresh process
each time) on small inputs, so the figure is start-up: the interpreter, the imports and the
first use of what a command needs. Measured per run with ``os.wait4``: wall seconds and CPU
seconds (user + system of the process). References in the same run, interleaved with the
commands: ``python -c pass`` (the interpreter alone) and ``python -c "import duckdb"`` (the
floor of any command that opens the store). Ratios are the command's median CPU over the
reference's median CPU.

Commands: ``atif --help``; ``atif query "select 1" --db STORE``; ``atif validate FILE`` (one
~50 KB trajectory); ``atif upload DIR`` of trials stored before (nothing new: start-up, the
store and a re-read check); ``atif report -e EXP --format json``; ``atif evaluate -e EXP``
with every pair rated already (nothing to judge: the judge's start-up without the model).
The inputs are distinct real-size trajectories from :mod:`bench.corpus`.

Bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``), as it is for an installed package
(pip compiles it at install); one more row runs ``atif query`` with ``PYTHONDONTWRITEBYTECODE=1``,
where a source checkout compiles every atif module it imports on each run. ``--before DIR``
adds, interleaved, each atif command run with another checkout's ``atif`` package.

Full size: 30 runs of each command (best and median); ``--quick``: 10 runs (for ``make bench``).
Run from the repository root:

    .venv/bin/python -m bench.startup_bench [--quick] [--runs N] [--before DIR]

Figures (``python -m bench.startup_bench --before DIR``, 30 runs, shared 2-core machine at load
average 5.4 to 3.9; median CPU seconds, the version before this module's changes in DIR)::

                                         now     before   now / import duckdb
    python -c pass                      0.025
    python -c "import duckdb"           0.121
    atif --help                         0.058    0.059    0.48
    atif query "select 1"               0.220    0.244    1.81
    atif validate FILE                  0.083    0.198    0.68
    atif upload DIR (nothing new)       0.347    0.530    2.87
    atif report --format json           0.280    0.400    2.31
    atif evaluate (nothing pending)     0.374    0.376    3.09

Also in ``bench/README.md`` (with the load average they were taken at).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.corpus import generate

CRITERIA = """\
name: startup-bench
judge:
  model: openai/gpt-4o-mini
  api_base: http://127.0.0.1:9/v1
criteria:
  - label: task-complete
    question: Did the agent complete the requested task?
"""


def _atif() -> list[str]:
    script = Path(sys.executable).with_name("atif")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from atif.cli import main; main()"]


def _env(pycache: Path | None) -> dict[str, str]:
    """The commands' environment: with ``pycache``, bytecode is cached there (as an installed
    package's is, compiled at install); without, sources are compiled on every run."""
    env = dict(os.environ)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.pop("ATIF_DB", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one whole process; fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def prepare(work: Path, atif: list[str], env: dict[str, str]) -> dict[str, Path]:
    """A store with 20 distinct trials, each rated on the one criterion, and one trajectory file."""
    out = work / "run"
    files = generate(out, 20)
    lines = (out / "trials.jsonl").read_bytes().splitlines()
    rated = []
    for i, line in enumerate(lines):
        rec = orjson.loads(line)
        rec["criterion_ratings"] = [{"criterion": "task-complete", "rating": "YES" if i % 2 else "NO"}]
        rated.append(orjson.dumps(rec))
    (out / "trials.jsonl").write_bytes(b"\n".join(rated) + b"\n")
    (work / "criteria.yaml").write_text(CRITERIA)
    store = work / "bench.duckdb"
    subprocess.run([*atif, "upload", str(out), "-e", "bench", "--criteria", str(work / "criteria.yaml"),
                    "--db", str(store), "--workers", "1"], cwd=work, env=env, check=True, capture_output=True)
    return {"store": store, "run": out, "file": files[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 runs of each command (for make bench)")
    p.add_argument("--runs", type=int, default=None, help="runs of each command (default 30, quick 10)")
    p.add_argument("--before", type=Path, default=None, metavar="DIR",
                   help="also run each atif command with another checkout's atif package (DIR holds atif/), "
                        "interleaved, e.g. from: git archive REV atif | tar -x -C DIR")
    args = p.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    atif = _atif()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="atif-startup-") as tmp:
        work = Path(tmp)
        env = _env(work / "pycache")
        paths = prepare(work, atif, env)
        db = ["--db", str(paths["store"])]
        commands: list[tuple[str, list[str], dict[str, str]]] = [(name, cmd, env) for name, cmd in [
            ("python -c pass", [py, "-c", "pass"]),
            ('python -c "import duckdb"', [py, "-c", "import duckdb"]),
            ("atif --help", [*atif, "--help"]),
            ('atif query "select 1"', [*atif, "query", "select 1", *db]),
            ("atif validate FILE", [*atif, "validate", str(paths["file"])]),
            ("atif upload DIR (nothing new)", [*atif, "upload", str(paths["run"]), "-e", "bench", "--workers", "1",
                                               *db]),
            ("atif report --format json", [*atif, "report", "-e", "bench", "--format", "json", *db]),
            ("atif evaluate (nothing pending)", [*atif, "evaluate", "-e", "bench", *db]),
        ]]
        # The same query where atif's own bytecode is not cached (PYTHONDONTWRITEBYTECODE=1 and a
        # source checkout without __pycache__): every atif module it imports is compiled each run.
        commands.append(('atif query "select 1" (sources compiled)', [*atif, "query", "select 1", *db], _env(None)))
        if args.before is not None:
            old_env = {**env, "PYTHONPATH": str(args.before.resolve())}
            commands += [(f"  before: {name[5:]}", cmd, old_env) for name, cmd, e in list(commands)
                         if name.startswith("atif ") and e is env]
        print(f"atif start-up, {runs} runs each, interleaved; load average {os.getloadavg()[0]:.2f} "
              f"({os.cpu_count()} cores)")
        for _, cmd, cmd_env in commands:  # warm the page cache and the bytecode cache once
            run_once(cmd, work, cmd_env)
        walls: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        cpus: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        for _ in range(runs):
            for name, cmd, cmd_env in commands:
                w, c = run_once(cmd, work, cmd_env)
                walls[name].append(w)
                cpus[name].append(c)
        ref_pass = statistics.median(cpus["python -c pass"])
        ref_duckdb = statistics.median(cpus['python -c "import duckdb"'])
        print(f"{'command':42} {'wall best':>9} {'median':>7} {'CPU best':>9} {'median':>7} "
              f"{'CPU / python':>12} {'CPU / duckdb':>12}")
        for name, _, _ in commands:
            med = statistics.median(cpus[name])
            print(f"{name:42} {min(walls[name]):9.3f} {statistics.median(walls[name]):7.3f} "
                  f"{min(cpus[name]):9.3f} {med:7.3f} {med / ref_pass:12.2f} {med / ref_duckdb:12.2f}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
