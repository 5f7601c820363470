"""The store's metrics views from 1,000 to 1,000,000 trials, against a plain scan of the same rows.

For each size, :func:`bench.store_bench.build_metrics_store` makes a realistic store in SQL (a
distinct trajectory per trial, ids of the real shape, 3 ratings per trial) and
:func:`bench.store_bench.metrics_at_scale` times ``experiment_metrics`` and ``criterion_metrics``
(best of 3, wall and CPU) and the reference: one scan and aggregate of the same trials and
ratings without a join, in the same run. Then the growth per tenfold size (10 is linear).

Sizes: full ``1000 10000 100000 1000000`` (the million-trial store takes a few minutes to
generate); ``--quick``: ``1000 10000 100000``. Goal: ``experiment_metrics`` under 1 s at 1,000,000.

    python -m bench.metrics_bench
    python -m bench.metrics_bench --quick
    python -m bench.metrics_bench 300000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store_bench import metrics_at_scale  # noqa: E402

VIEWS = ("reference", "experiment_metrics", "criterion_metrics")


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
            m = metrics_at_scale(n, Path(tmp))
            figures[n] = m
            print(f"\n== {n:,} trials x 3 ratings (generated in SQL in {m['build (s)']:.1f} s), best of 3 ==")
            for v in VIEWS:
                ratio = f"{m[v] / m['reference']:6.1f} x reference" if v != "reference" else ""
                print(f"  {v:<20} {m[v] * 1000:9.1f} ms wall {m[v + ' cpu'] * 1000:9.1f} ms cpu  "
                      f"({m[v + ' rows']} rows)  {ratio}")
    print("\n== growth (time at the next size / time at this one) ==")
    print("  " + " " * 26 + "".join(f"{v:>20}" for v in VIEWS))
    for lo, hi in zip(sizes, sizes[1:], strict=False):
        print(f"  {lo:>9,} -> {hi:>9,} ({hi / lo:g}x)" + "".join(f"{figures[hi][v] / figures[lo][v]:20.2f}" for v in VIEWS))
    top = figures[sizes[-1]]
    verdict = "met" if top["experiment_metrics"] < 1.0 else "MISSED"
    print(f"\ngoal: experiment_metrics < 1 s at {sizes[-1]:,} trials: {verdict} ({top['experiment_metrics']:.2f} s)")
    print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
