"""``atif validate`` against Harbor's ``Trajectory.model_validate_json``, whole process and library call.

Figures (``ATIF_HARBOR_PYTHON=/tmp/harbor-venv/bin/python .venv/bin/python -m bench.validate_bench
--repeat 3``; 5,000 files, 258 MB; shared 2-core machine at load average 5.7)::

                                                              wall s   CPU s   Harbor/atif: wall   CPU
      harbor model_validate_json (warm process)                 1.19    0.90
      atif validate DIR (whole process, default workers)        2.02    1.20               0.59  0.75
      atif validate DIR --workers 1 (whole process)             2.07    1.08               0.57  0.83
      atif.validate_files() (library call, default workers)     1.48    0.94               0.80  0.95
      atif.validate_files(workers=1) (library call)             1.11    0.83               1.07  1.09
      peak RSS of atif validate --workers 1, 1000 files       34 MiB
      peak RSS of atif validate --workers 1, 5000 files       36 MiB

(the version before the fast path: 0.41 to 0.48 of Harbor's speed; the one before that 0.19 to
0.31 and 580 MiB; see ``docs/performance.md``). Full size: 5,000 files; ``--quick``: 500 files. Run from the
repository root:

    ATIF_HARBOR_PYTHON=/tmp/harbor-venv/bin/python .venv/bin/python -m bench.validate_bench [--quick]

Corpus: :mod:`bench.corpus` (one distinct trajectory per file, real id shapes, chained from the
real Harbor trajectories under ``fixtures/``; ~51 KB each, 255 MB at 5,000). Measured in one run,
alternating, best of ``--repeat``:

* Harbor: ``Trajectory.model_validate_json(path.read_bytes())`` over every file in one warm
  process (imports not counted), in the Harbor venv (``ATIF_HARBOR_PYTHON``);
* ``atif validate DIR -q`` as a user runs it: the whole process, start-up and imports included,
  with the default workers and with ``--workers 1``; its peak RSS at 1/5 and all of the files
  (memory must not grow with the number of files);
* the library call ``atif.validate_files`` in this process (warmed up on 50 files first, as
  Harbor's loop is warm), with the default workers and with one.

Wall and CPU seconds are given for each (CPU: the process and its workers; on a loaded machine
wall time is mostly waiting for a core). Ratios are Harbor's seconds / atif's seconds (>= 1.0:
atif is at least as fast). Harbor needs
Python 3.12: ``PYENV_VERSION=3.12.1 python3.12 -m venv /tmp/harbor-venv &&
/tmp/harbor-venv/bin/pip install -q pydantic==2.14.3 && /tmp/harbor-venv/bin/pip install -q
--no-deps harbor==0.25.0``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import generate, harbor_time  # noqa: E402


def run_process(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (the process and its workers) of one command, as a user waits for it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[3:5]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def peak_rss(cmd: list[str]) -> float:
    """Peak RSS (MiB) of one run of ``cmd`` measured in a fresh wrapper (so earlier runs do not mask it)."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.split()[-1]) / 1024


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the workers of a pool)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def library_time(files: list[Path], workers: int | None) -> tuple[float, float]:
    """Wall and CPU seconds of ``atif.validate_files`` over ``files`` in this (warm) process."""
    from atif import validate_files

    c0, t0 = _cpu(), time.perf_counter()
    n = sum(1 for r in validate_files(files, workers=workers) if r.valid)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    assert n == len(files), f"{len(files) - n} files invalid"
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="500 files, three repeats (for make bench)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--harbor-python", default=os.environ.get("ATIF_HARBOR_PYTHON", ".harbor-venv/bin/python"))
    args = p.parse_args()
    if args.quick:
        args.files, args.repeat = 500, 3
    atif_cli = [sys.executable, "-c", "from atif.cli import main; main()", "validate", "-q"]
    with tempfile.TemporaryDirectory(prefix="atif-validate-bench-") as tmp:
        work = Path(tmp)
        src = work / "run"
        files = generate(src, args.files, trials_file=False)
        size = sum(f.stat().st_size for f in files)
        print(f"corpus: {len(files)} distinct trajectories, {size / 1e6:.0f} MB "
              f"({size / len(files) / 1e3:.0f} KB each); load average {os.getloadavg()[0]:.2f}")
        target = str(src / "trajectories")
        library_time(files[:50], 1)  # import and warm up the library, as Harbor's loop is warm
        harbor: list[tuple[float, float]] = []
        rows: dict[str, list[tuple[float, float]]] = {
            "atif validate DIR (whole process, default workers)": [],
            "atif validate DIR --workers 1 (whole process)": [],
            "atif.validate_files() (library call, default workers)": [],
            "atif.validate_files(workers=1) (library call)": [],
        }
        runs = list(rows.values())
        for _ in range(args.repeat):  # alternating, so that each row sees the same load
            ht = harbor_time(args.harbor_python, files, work)
            if ht is not None:
                harbor.append(ht)
            runs[0].append(run_process([*atif_cli, target]))
            runs[1].append(run_process([*atif_cli, "--workers", "1", target]))
            runs[2].append(library_time(files, None))
            runs[3].append(library_time(files, 1))
        print(f"  {'':<54} {'wall s':>7} {'CPU s':>7}   Harbor/atif: wall   CPU")
        hw, hc = (min(w for w, _ in harbor), min(c for _, c in harbor)) if harbor else (None, None)
        if hw is not None and hc is not None:
            print(f"  {'harbor model_validate_json (warm process)':<54} {hw:7.2f} {hc:7.2f}")
        for label, got in rows.items():
            wall, cpu = min(w for w, _ in got), min(c for _, c in got)
            ratio = f"  {hw / wall:17.2f} {hc / cpu:5.2f}" if hw and hc else ""
            print(f"  {label:<54} {wall:7.2f} {cpu:7.2f}{ratio}")
        if not harbor:
            print(f"  harbor not found at {args.harbor_python!r} (set ATIF_HARBOR_PYTHON): no ratio")
        fifth = sorted(files)[: max(1, len(files) // 5)]
        part = work / "part"
        for f in fifth:
            dest = part / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(f)
        for label, folder in ((f"{len(fifth)} files", part), (f"{len(files)} files", src)):
            one = peak_rss([*atif_cli, "--workers", "1", str(folder)])
            print(f"  peak RSS of atif validate --workers 1, {label:<12} {one:6.0f} MiB")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
