"""Run every benchmark of ``bench/``: quick sizes by default (``make bench``), full sizes with ``--full``.

Each bench module runs in its own process, as a user runs it (``python -m bench.<module>``), so one
module's memory or crash cannot skew the next. Quick mode passes ``--quick`` to each module: a
small size meant to finish well under two minutes, so the whole run stays under 15 minutes on two
cores. A module that does not accept ``--quick`` (its source never mentions it) is skipped with a
note rather than run at full size. Full mode runs each module with no arguments: its documented
full sizes (see each module's docstring and ``bench/README.md``).

``team_bench`` needs a PostgreSQL and the ``team`` extra: it runs when a server is named (``--pg
DSN`` or ``ATIF_TEST_PG``, a libpq connection string of a server the bench may create databases
on), with the interpreter ``--team-python`` / ``ATIF_TEAM_PYTHON`` (default: this one) when that
interpreter has the extra; otherwise it is skipped with a note.

The output of every module is passed through; a summary at the end lists each module's status and
wall time, and the exit status is 1 when any module failed.

    python -m bench.run_all               # quick sizes (make bench)
    python -m bench.run_all --full        # documented full sizes (make bench FULL=1); can take hours
    python -m bench.run_all report_bench  # only the named modules
    ATIF_TEST_PG="host=127.0.0.1 port=5432 user=atif password=..." ATIF_TEAM_PYTHON=.venv-team/bin/python \\
        python -m bench.run_all team_bench
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULES = (
    "startup_bench",
    "validate_bench",
    "convert_bench",
    "store_bench",
    "judge_bench",
    "metrics_bench",
    "report_bench",
    "serve_bench",
    "team_bench",
    "judge_quality.run",
    "judge_long.run",
)
"""Every bench module, in the order they run (cheap ones first)."""

QUICK_TIMEOUT_S = 300
"""A quick run that takes longer than this is stopped and reported as failed."""

LOCAL_MODEL = {"judge_quality.run": 600, "judge_long.run": 600}
"""Modules that run the offline judge model (the ``local`` extra): their quick timeout, longer
because a verdict of the 0.5B model takes seconds to a minute on 2 cores."""


def source_of(module: str) -> Path:
    """The file of ``bench.<module>``."""
    return ROOT / "bench" / (module.replace(".", "/") + ".py")


def accepts_quick(module: str) -> bool:
    """Whether the module handles ``--quick`` (it is named in its source)."""
    return "--quick" in source_of(module).read_text(encoding="utf-8")


TEAM_MODULE = "team_bench"


def team_unavailable(python: str, dsn: str | None) -> str | None:
    """Why ``team_bench`` cannot run (no server named, or ``python`` lacks the team extra), else None."""
    if not dsn:
        return "no PostgreSQL named (--pg DSN or ATIF_TEST_PG)"
    probe = subprocess.run([python, "-c", "import duckdb_extension_ducklake, duckdb_extension_postgres"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        return f"{python} has no team extra (pip install -e '.[team]'; or name one with ATIF_TEAM_PYTHON)"
    return None


def run(module: str, full: bool, python: str = sys.executable, extra_env: dict[str, str] | None = None) -> tuple[
    str, float
]:
    """Run one module; return its status and wall seconds."""
    cmd = [python, "-m", f"bench.{module}"] + ([] if full else ["--quick"])
    print(f"\n===== {' '.join(['python', *cmd[1:]])} =====", flush=True)
    # This checkout first, so that a venv with atif installed from another one runs this code.
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(extra_env or {}))
    t = time.perf_counter()
    try:
        limit = None if full else LOCAL_MODEL.get(module, QUICK_TIMEOUT_S)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return f"FAILED (over {limit} s)", time.perf_counter() - t
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    return status, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    """Run the selected modules and print a summary; 1 when any failed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="documented full sizes instead of --quick")
    ap.add_argument("--pg", default=os.environ.get("ATIF_TEST_PG"),
                    help="libpq connection string of a PostgreSQL for team_bench (default: $ATIF_TEST_PG)")
    ap.add_argument("--team-python", default=os.environ.get("ATIF_TEAM_PYTHON", sys.executable),
                    help="interpreter with the team extra for team_bench (default: $ATIF_TEAM_PYTHON, else this one)")
    ap.add_argument("modules", nargs="*", help=f"modules to run (default: all of {', '.join(MODULES)})")
    args = ap.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown bench module {unknown[0]!r}; known: {', '.join(MODULES)}")
    summary: list[tuple[str, str, float]] = []
    t0 = time.perf_counter()
    for module in args.modules or MODULES:
        if not source_of(module).exists():
            summary.append((module, "skipped: no such file", 0.0))
            continue
        if module in LOCAL_MODEL and importlib.util.find_spec("xllamacpp") is None:
            print(f"\n===== bench.{module}: skipped, it runs the offline judge (pip install -e '.[local]') =====")
            summary.append((module, "skipped: no local extra", 0.0))
            continue
        if not args.full and not accepts_quick(module):
            print(f"\n===== bench.{module}: skipped, it has no --quick size yet (run it alone or with --full) =====")
            summary.append((module, "skipped: no --quick", 0.0))
            continue
        if module == TEAM_MODULE:
            why = team_unavailable(args.team_python, args.pg)
            if why:
                print(f"\n===== bench.{module}: skipped, {why} =====")
                summary.append((module, "skipped: no PostgreSQL" if not args.pg else "skipped: no team extra", 0.0))
                continue
            # The DSN (it may hold a password) goes by the environment, not the printed command line.
            status, seconds = run(module, args.full, args.team_python, {"ATIF_TEST_PG": args.pg or ""})
            summary.append((module, status, seconds))
            continue
        status, seconds = run(module, args.full)
        summary.append((module, status, seconds))
    print(f"\n===== summary ({'full' if args.full else 'quick'} sizes, {time.perf_counter() - t0:.0f} s in all) =====")
    for module, status, seconds in summary:
        print(f"  {module:<20} {status:<28} {seconds:7.1f} s")
    return 1 if any(s.startswith("FAILED") for _, s, _ in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
