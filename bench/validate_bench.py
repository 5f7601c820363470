"""``atif validate`` against Harbor's ``Trajectory.model_validate_json``, whole process and library call.

Figures (``ATIF_HARBOR_PYTHON=/tmp/harbor-venv/bin/python .venv/bin/python -m bench.validate_bench
--repeat 2``; 5,000 files, 258 MB; shared 2-core machine at load average 5.9)::

    harbor model_validate_json (warm process)               1.94 s
    atif validate DIR (whole process, default workers)      4.06 s  ratio harbor/atif  0.48
    atif validate DIR --workers 1 (whole process)           4.69 s  ratio harbor/atif  0.41
    atif.validate_files(workers=1) (library call)           4.30 s  ratio harbor/atif  0.45
    peak RSS of atif validate --workers 1, 1000 files       37 MiB
    peak RSS of atif validate --workers 1, 5000 files       39 MiB

(the version before: 0.19 to 0.31 of Harbor's speed and 580 MiB on the same files; see
``docs/performance.md``). Full size: 5,000 files; ``--quick``: 500 files. Run from the
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
* the library call ``atif.validate_files`` in this process, 1 worker.

Ratios are Harbor's seconds / atif's seconds (>= 1.0: atif is at least as fast). Harbor needs
Python 3.12: ``PYENV_VERSION=3.12.1 python3.12 -m venv /tmp/harbor-venv &&
/tmp/harbor-venv/bin/pip install -q pydantic==2.14.3 && /tmp/harbor-venv/bin/pip install -q
--no-deps harbor==0.25.0``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import generate, harbor_time  # noqa: E402


def run_process(cmd: list[str]) -> float:
    """Wall seconds of one command, as a user waits for it."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[3:5]} failed: {proc.stderr.decode()[-2000:]}")
    return wall


def peak_rss(cmd: list[str]) -> float:
    """Peak RSS (MiB) of one run of ``cmd`` measured in a fresh wrapper (so earlier runs do not mask it)."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.split()[-1]) / 1024


def library_time(files: list[Path]) -> float:
    from atif import validate_files

    t0 = time.perf_counter()
    n = sum(1 for r in validate_files(files, workers=1) if r.valid)
    dt = time.perf_counter() - t0
    assert n == len(files), f"{len(files) - n} files invalid"
    return dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="500 files, one repeat (for make bench)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--harbor-python", default=os.environ.get("ATIF_HARBOR_PYTHON", ".harbor-venv/bin/python"))
    args = p.parse_args()
    if args.quick:
        args.files, args.repeat = 500, 1
    atif_cli = [sys.executable, "-c", "from atif.cli import main; main()", "validate", "-q"]
    with tempfile.TemporaryDirectory(prefix="atif-validate-bench-") as tmp:
        work = Path(tmp)
        src = work / "run"
        files = generate(src, args.files, trials_file=False)
        size = sum(f.stat().st_size for f in files)
        print(f"corpus: {len(files)} distinct trajectories, {size / 1e6:.0f} MB "
              f"({size / len(files) / 1e3:.0f} KB each); load average {os.getloadavg()[0]:.2f}")
        target = str(src / "trajectories")
        h: list[float] = []
        cli_auto: list[float] = []
        cli_one: list[float] = []
        lib: list[float] = []
        for _ in range(args.repeat):
            ht = harbor_time(args.harbor_python, files, work)
            if ht is not None:
                h.append(ht[0])
            cli_auto.append(run_process([*atif_cli, target]))
            cli_one.append(run_process([*atif_cli, "--workers", "1", target]))
            lib.append(library_time(files))
        rows = [("atif validate DIR (whole process, default workers)", min(cli_auto)),
                ("atif validate DIR --workers 1 (whole process)", min(cli_one)),
                ("atif.validate_files(workers=1) (library call)", min(lib))]
        if h:
            print(f"  {'harbor model_validate_json (warm process)':<52} {min(h):7.2f} s")
        for label, secs in rows:
            ratio = f"  ratio harbor/atif {min(h) / secs:5.2f}" if h else ""
            print(f"  {label:<52} {secs:7.2f} s{ratio}")
        if not h:
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
