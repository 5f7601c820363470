"""``atif serve`` speed: the experiment page at 100,000 trials and a trial with 2,000 steps.

Generates the report benchmark's store (``bench.report_bench.generate``: two experiments of N
trials x 5 criteria, entirely in SQL) plus one trial whose trajectory has 2,000 realistic
coding-agent steps (tool calls with shell output, reasoning, metrics, timestamps), starts the
app on a real uvicorn server on 127.0.0.1, and measures:

* **time to first byte** over HTTP (httpx, keep-alive): the page is rendered before its first
  byte leaves, so this is the server's whole work; *cold* is the first request after the data
  changed (the summary is computed), *warm* a repeat (the summary comes from the cache; the trial
  table page is queried every time);
* **time to a rendered page** in headless Chromium (navigation until the load event and a layout),
  when playwright and Debian's chromium are there;
* the summary of the experiment page (``build_report``, fetched by the page after it renders):
  cold and warm;
* the reference: in this process, opening the store and counting the experiment's trials (the
  floor of any page that reads the experiment).

The goal of issue 16 is under 1 s for each. Run from the repository root::

    python -m bench.serve_bench            # 100,000 trials per experiment
    python -m bench.serve_bench 20000      # fewer
    python -m bench.serve_bench --quick    # 10,000 trials per experiment (make bench)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atif.serve import create_app
from atif.store import Store
from atif.store.keys import fill_missing
from bench.report_bench import generate

GOAL_S = 1.0
N_STEPS = 2000
CHROMIUM = os.environ.get("ATIF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def long_trajectory(n_steps: int, seed: int = 7) -> dict[str, Any]:
    """A coding-agent trajectory of ``n_steps`` steps, shell output of 200-6,000 characters per call."""
    rng = random.Random(seed)
    words = ("def", "return", "self", "import", "test", "assert", "value", "error", "path", "config", "data", "src")
    steps: list[dict[str, Any]] = [
        {"step_id": 1, "source": "system", "message": "You are a coding agent. Use the bash tool.",
         "timestamp": "2026-01-01T00:00:00Z"},
        {"step_id": 2, "source": "user", "message": "Fix the failing tests in src/parser.",
         "timestamp": "2026-01-01T00:00:01Z"},
    ]
    t = 1.0
    for k in range(3, n_steps + 1):
        t += rng.uniform(0.5, 8.0)
        out = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
                        for _ in range(rng.randint(5, 90)))
        cid = f"call-{k}"
        steps.append({
            "step_id": k, "source": "agent",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1767225600 + t)) + "Z",
            "message": f"Step {k}: looking at {rng.choice(words)}.",
            "reasoning_content": "The failing test points at the tokenizer. " * rng.randint(1, 8),
            "tool_calls": [{"tool_call_id": cid, "function_name": "bash",
                            "arguments": {"command": f"grep -rn {rng.choice(words)} src/ | head -80"}}],
            "observation": {"results": [{"source_call_id": cid, "content": out}]},
            "metrics": {"prompt_tokens": 2000 + 30 * k, "completion_tokens": rng.randint(20, 400),
                        "cached_tokens": 1500 + 25 * k, "cost_usd": round(0.0001 * k, 5)},
        })
    return {"schema_version": "ATIF-v1.6", "session_id": "long", "steps": steps,
            "agent": {"name": "coder", "version": "1.0", "model_name": "m-large",
                      "tool_definitions": [{"type": "function", "function": {"name": "bash", "parameters": {}}}]},
            "final_metrics": {"total_steps": n_steps}}


def add_long_trial(path: Path) -> str:
    """Store one trial of experiment ``bench-b`` with a ``N_STEPS``-step trajectory; return its id."""
    raw = json.dumps(long_trajectory(N_STEPS)).encode()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO trajectory_data (trajectory_id, raw, schema_version, agent_name, model_name, step_count,"
                " n_bytes) VALUES ('traj-long', ?, 'ATIF-v1.6', 'coder', 'm-large', ?, ?)", [raw, N_STEPS, len(raw)])
    con.execute("INSERT INTO trial_data (trial_id, experiment, task_name, epoch, trajectory_id, reward, steps, "
                "record_hash) VALUES (?, 'bench-b', 'long-task', 1, 'traj-long', 1.0, ?, 'x')", ["f" * 64, N_STEPS])
    con.execute("INSERT INTO rating_data (trial_id, criterion, verdict, reasoning, cited_steps, source) "
                "VALUES (?, 'criterion-0', 'YES', 'Step 1500 runs the tests.', [1500, 1999], 'judge')", ["f" * 64])
    fill_missing(con)  # the trial key and rating cohort the store's writers would have set
    con.close()
    print(f"trajectory of {N_STEPS:,} steps: {len(raw) / 1e6:.1f} MB of JSON")
    return "f" * 64


class Server:
    """The app on uvicorn in a thread, on an ephemeral port of 127.0.0.1."""

    def __init__(self, store: Path) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(create_app(store, read_only=True), host="127.0.0.1", port=0,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def ttfb(client: httpx.Client, url: str) -> tuple[float, int]:
    """Seconds to the first byte of the body, and the body's size."""
    t0 = time.perf_counter()
    with client.stream("GET", url) as r:
        first = None
        size = 0
        for chunk in r.iter_raw():
            if first is None:
                first = time.perf_counter() - t0
            size += len(chunk)
        assert r.status_code == 200, (url, r.status_code)
    return first or 0.0, size


def rendered(urls: dict[str, str]) -> dict[str, float] | None:
    """Seconds from navigation to the load event plus a layout, per page, in headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).exists():
        return None
    out: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name, url in urls.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                page.goto(url, wait_until="load")
                page.evaluate("document.body.getBoundingClientRect().height")
                best = min(best, time.perf_counter() - t0)
            out[name] = best
        browser.close()
    return out


def main(n: int) -> None:
    """Generate, serve, measure, print."""
    with tempfile.TemporaryDirectory(prefix="atif-serve-bench-") as tmp:
        path = Path(tmp) / "bench.duckdb"
        gen_s = generate(path, n)
        print(f"generated 2 x {n:,} trials x 5 criteria in SQL: {gen_s:.1f} s")
        long_id = add_long_trial(path)
        server = Server(path)
        pages = {
            "experiment page": f"{server.base}/experiment?e=bench-b",
            "experiment, sorted by cost, filtered": f"{server.base}/experiment?e=bench-b&sort=cost&desc=1"
                                                    "&criterion=criterion-2&verdict=NO&page=40",
            "trial of 2,000 steps": f"{server.base}/trial/{long_id}",
        }
        try:
            ref = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                with Store.open(path, read_only=True) as store:
                    store.read_one("SELECT count(*) FROM trials WHERE experiment = 'bench-b'")
                ref = min(ref, time.perf_counter() - t0)
            print(f"reference: open the store, count the trials:   {ref * 1000:8.1f} ms")
            with httpx.Client(timeout=60) as c:
                worst = 0.0
                for name, url in pages.items():
                    cold, size = ttfb(c, url)
                    warm = min(ttfb(c, url)[0] for _ in range(3))
                    worst = max(worst, cold)
                    print(f"{name:44s}  first byte cold {cold * 1000:7.1f} ms, warm {warm * 1000:7.1f} ms "
                          f"({warm / ref:5.1f} x reference), {size / 1e6:.2f} MB")
                summary = f"{server.base}/experiment/summary?e=bench-a"
                cold = ttfb(c, summary)[0]
                warm = min(ttfb(c, summary)[0] for _ in range(3))
                print(f"{'summary section (build_report), bench-a':44s}  first byte cold {cold * 1000:7.1f} ms, "
                      f"warm {warm * 1000:7.1f} ms ({cold / ref:5.1f} x reference cold)")
            shown = rendered(pages)
            if shown is None:
                print("rendered page: skipped (needs playwright and chromium)")
            else:
                for name, s in shown.items():
                    worst = max(worst, s)
                    print(f"{name:44s}  rendered in Chromium {s * 1000:7.1f} ms")
            print(f"goal: each under {GOAL_S:.0f} s at {n:,} trials: {'met' if worst < GOAL_S else 'MISSED'} "
                  f"(slowest {worst:.2f} s)")
        finally:
            server.stop()


if __name__ == "__main__":
    sizes = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(sizes[0]) if sizes else 10_000 if "--quick" in sys.argv[1:] else 100_000)
