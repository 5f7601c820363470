"""Judge throughput against a local stub judge, as a user runs it and as a library call.

Usage::

    .venv/bin/python -m bench.judge_bench            # full: 2,000 judgements, concurrency 16, 200 ms
    .venv/bin/python -m bench.judge_bench --quick    # 300 judgements, no --workers section (for `make bench`)
    .venv/bin/python -m bench.judge_bench [--judgements N] [--concurrency C] [--delay S] [--criteria K]
                                          [--wide-concurrency 64] [--no-workers]

Full sizes: 2,000 judgements (400 trials x 5 llm criteria), concurrency 16, 200 ms per answer;
the ``--workers`` section at concurrency 64. ``--quick``: 300 judgements, the same concurrency,
without the ``--workers`` section (each worker process pays litellm's import, seconds, which a
small size cannot amortise).

1. An OpenAI-compatible stub judge runs in a process of its own on 127.0.0.1 (asyncio,
   keep-alive), answering a YES/NO verdict ``--delay`` seconds after each request arrives.
2. A store holds ``judgements / criteria`` distinct trials: Harbor's own golden trajectories
   (``fixtures/harbor-golden``, 7-57 kB each), each made distinct by a line of its first message,
   uploaded with real ids. A fresh ``ATIF_HOME``: nothing is known about the model beforehand.
3. Reference, in the same run: bare ``litellm.acompletion`` calls with real judge prompts at the
   same concurrency (what litellm alone costs on this machine), wall time and CPU per call.
4. Library: ``atif.evaluate()`` in this process, on a fresh copy of the unjudged store each time
   (litellm imported and warmed by one call, the judge's modules imported, as the reference's are).
   Reference and library alternate for ``--rounds`` rounds (default 2): on a shared machine the
   load drifts, and alternating exposes both to it alike. The figures are their totals over the
   rounds; each round's own ratio is printed too.
5. CLI: ``atif evaluate`` on a copy of the unjudged store, the whole process timed as a user runs
   it (interpreter start, imports, judging), with its CPU (user + system) per judgement.
6. CLI, fully cached: the ratings deleted, ``atif evaluate`` again: every answer comes from the
   cache. Reports whether the process imported litellm (``python -X importtime``).
7. ``--workers``: ``atif evaluate --concurrency 64`` with 1 and 2 worker processes, throughput
   against the ideal and against a bare litellm loop at concurrency 64 in one process.

Figures: wall time over the ideal ``judgements x delay / concurrency`` (what a judge with no
overhead of its own would need), and our own CPU per judgement (the run's minus litellm's) over
litellm's. The client uses litellm's default HTTP transport (aiohttp), as a user's run does.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

GOLDEN = ROOT / "fixtures" / "harbor-golden" / "harbor-v0.1.31" / "tests" / "golden"
ATIF = [sys.executable, "-c", "from atif.cli import main; main()"]

ANSWER = json.dumps({
    "id": "chatcmpl-stub", "object": "chat.completion", "created": 1, "model": "stub-judge",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": json.dumps({"reasoning": "step 5 shows it", "rating": "YES", "cited_steps": [5]})}}],
    "usage": {"prompt_tokens": 900, "completion_tokens": 25, "total_tokens": 925},
}).encode()


def _stub(port_out: Any, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if not await reader.readline():
                    break
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(ANSWER), ANSWER))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _trials(n: int, folder: Path) -> Path:
    """``n`` distinct trials from Harbor's golden trajectories (a line of the first message differs)."""
    sources = sorted(p for p in GOLDEN.rglob("*.trajectory*.json") if ".summarization-" not in p.name)
    docs = [json.loads(p.read_text()) for p in sources]
    folder.mkdir(parents=True)
    with (folder / "trials.jsonl").open("w") as f:
        for i in range(n):
            doc = copy.deepcopy(docs[i % len(docs)])
            doc["session_id"] = f"{doc.get('session_id') or 'session'}-{i:05d}"
            first = doc["steps"][0]
            if isinstance(first.get("message"), str):
                first["message"] += f"\n(working copy {i:05d})"
            f.write(json.dumps({"task_name": f"hello-world-{i % 97:02d}", "epoch": i // 97 + 1,
                                "trajectory": doc}) + "\n")
    return folder


def _cli(args: list[str], env: dict[str, str], *, importtime: bool = False) -> tuple[float, float, str]:
    """Run ``atif ARGS`` as a user does; its wall seconds, CPU seconds (user + system) and stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    cmd = [sys.executable, "-X", "importtime", *ATIF[1:]] if importtime else ATIF
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"atif {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def _reference(litellm: Any, api_base: str, prompts: list[list[dict[str, Any]]], total: int,
               concurrency: int) -> tuple[float, float]:
    """Bare litellm calls with real judge prompts: wall seconds and CPU seconds."""

    async def run() -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await litellm.acompletion(model="openai/stub-judge", api_base=api_base, api_key="x",
                                          messages=prompts[i % len(prompts)], temperature=0, num_retries=0,
                                          max_retries=0, response_format={"type": "json_object"})

        await asyncio.gather(*(one(i) for i in range(total)))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    asyncio.run(run())
    return time.perf_counter() - wall0, time.process_time() - cpu0


def _clear_ratings(db: Path) -> None:
    from atif.store import Store

    with Store(db) as store:
        store._db.execute("DELETE FROM rating_data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 judgements (for make bench)")
    parser.add_argument("--judgements", type=int, default=None, help="default 2000 (300 with --quick)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wide-concurrency", type=int, default=64, help="concurrency of the --workers section")
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--criteria", type=int, default=5)
    parser.add_argument("--no-workers", action="store_true", help="skip the --workers section")
    parser.add_argument("--rounds", type=int, default=2, help="reference/library rounds, alternating (default 2)")
    args = parser.parse_args()
    judgements = args.judgements or (300 if args.quick else 2000)

    receive, send = multiprocessing.Pipe(duplex=False)
    stub = multiprocessing.Process(target=_stub, args=(send, args.delay), daemon=True)
    stub.start()
    port = receive.recv()
    api_base = f"http://127.0.0.1:{port}/v1"
    tmp = Path(tempfile.mkdtemp(prefix="atif-judge-bench-"))
    os.environ["ATIF_HOME"] = str(tmp / "home")
    env = {**os.environ, "ATIF_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    try:
        started = time.perf_counter()
        from atif.judge import client

        litellm = client.litellm_module()
        import_s = time.perf_counter() - started

        async def warm() -> None:
            await litellm.acompletion(model="openai/stub-judge", api_base=api_base, api_key="x",
                                      messages=[{"role": "user", "content": "warm up"}])

        asyncio.run(warm())

        import atif
        from atif.store import Store

        n_trials = judgements // args.criteria
        total = n_trials * args.criteria
        criteria = [{"label": f"req-{k}", "question": f"Did the agent meet requirement {k} of the task?",
                     "kind": "llm"} for k in range(args.criteria)]
        src = _trials(n_trials, tmp / "src")
        fresh = tmp / "fresh.duckdb"
        with Store(fresh) as store:
            atif.upload([src], "bench", store=store, create_missing_tasks=True,
                        criteria={"name": "bench", "criteria": criteria,
                                  "judge": {"model": "openai/stub-judge", "api_base": api_base}})
            pairs = store.pending("bench")[:60]
            prompts = [atif.render_messages(store, p.trial_id, p.criterion)["messages"] for p in pairs]
        sizes = sorted(sum(len(m["content"]) for m in p) for p in prompts)

        import atif.judge.engine  # noqa: F401  (imported before timing, as litellm is)

        ref = rcpu = lib = lcpu = 0.0
        rounds: list[tuple[float, float, float, float]] = []
        for n in range(max(1, args.rounds)):
            r_wall, r_cpu = _reference(litellm, api_base, prompts, total, args.concurrency)
            lib_db = tmp / f"lib-{n}.duckdb"
            shutil.copy(fresh, lib_db)
            with Store(lib_db) as store:
                wall0, cpu0 = time.perf_counter(), time.process_time()
                summary = atif.evaluate(store, "bench", concurrency=args.concurrency)
                l_wall, l_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            assert summary.judged == total, summary
            rounds.append((r_wall, r_cpu, l_wall, l_cpu))
            ref, rcpu, lib, lcpu = ref + r_wall, rcpu + r_cpu, lib + l_wall, lcpu + l_cpu
        # Totals over the rounds, as one run of rounds x total judgements.
        n_rounds = len(rounds)

        shutil.rmtree(tmp / "home")  # the CLI run starts knowing nothing of the model
        cli_db = tmp / "cli.duckdb"
        shutil.copy(fresh, cli_db)
        cli, ccpu, _ = _cli(["evaluate", "-e", "bench", "--concurrency", str(args.concurrency), "--db", str(cli_db),
                             "--format", "json"], env)
        _clear_ratings(cli_db)
        cached, cached_cpu, _ = _cli(["evaluate", "-e", "bench", "--db", str(cli_db), "--format", "json"], env)
        _clear_ratings(cli_db)
        _, _, imports = _cli(["evaluate", "-e", "bench", "--db", str(cli_db), "--format", "json"], env,
                             importtime=True)
        litellm_imported = any(line.rstrip().endswith("| litellm") for line in imports.splitlines())

        wide: list[tuple[int, float]] = []
        wide_ref = 0.0
        if not (args.no_workers or args.quick):
            wide_ref, _ = _reference(litellm, api_base, prompts, total, args.wide_concurrency)
            for workers in (1, 2):
                db = tmp / f"workers-{workers}.duckdb"
                shutil.copy(fresh, db)
                wall, _, _ = _cli(["evaluate", "-e", "bench", "--concurrency", str(args.wide_concurrency),
                                   "--workers", str(workers), "--db", str(db), "--format", "json"], env)
                with Store(db, read_only=True) as store:
                    left = store.pending_count("bench")
                assert left == 0, f"--workers {workers} left {left} pairs"
                wide.append((workers, wall))
    finally:
        stub.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    ideal = total * args.delay / args.concurrency
    per_call = rcpu / (total * n_rounds) * 1000
    ref, lib = ref / n_rounds, lib / n_rounds

    def own(cpu: float) -> str:
        mine = cpu / (total * n_rounds) * 1000 - per_call
        return f"{cpu / (total * n_rounds) * 1000:5.2f} ms CPU per judgement, our own {mine:5.2f} ms = {mine / per_call:4.2f} x litellm's"

    load = os.getloadavg()
    print(f"judge benchmark: {total} judgements ({n_trials} distinct trials x {args.criteria} criteria, prompts "
          f"{sizes[0] // 1000}-{sizes[-1] // 1000} k chars), stub answers after {args.delay * 1000:.0f} ms, "
          f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  litellm import (once per process)      {import_s:6.2f} s")
    print(f"  rounds (reference, library) x {n_rounds}: our own CPU over litellm's per round "
          + ", ".join(f"{(lc - rc) / rc:4.2f}" for _, rc, _, lc in rounds)
          + ";  wall time over ideal per round " + ", ".join(f"{rw / ideal:4.2f}/{lw / ideal:4.2f}" for rw, _, lw, _ in rounds))
    print(f"  bare litellm calls (reference)         {ref:6.2f} s   ideal {ideal:5.2f} s   ratio {ref / ideal:4.2f}   "
          f"{per_call:5.2f} ms CPU per call")
    print(f"  evaluate() library call                {lib:6.2f} s   ratio {lib / ideal:4.2f} (goal <= 1.3)  "
          f"{lib / ref:4.2f} x reference;  {own(lcpu)} (goal <= 0.3)")
    print(f"  atif evaluate, whole process           {cli:6.2f} s   ratio {cli / ideal:4.2f}   {cli / ref:4.2f} x reference;  "
          f"{ccpu / total * 1000:5.2f} ms CPU per judgement with imports")
    print(f"  atif evaluate, every answer cached     {cached:6.2f} s   ({cached_cpu / total * 1000:.2f} ms CPU per "
          f"judgement; goal < 3 s for 2,000); litellm imported: {'YES' if litellm_imported else 'no'}")
    if wide:
        wide_ideal = total * args.delay / args.wide_concurrency
        print(f"  concurrency {args.wide_concurrency}: ideal {wide_ideal:.2f} s ({total / wide_ideal:.0f} judgements/s); "
              f"bare litellm in one process {wide_ref:.2f} s ({total / wide_ref:.0f}/s)")
        for workers, wall in wide:
            print(f"    atif evaluate --workers {workers}, whole process  {wall:6.2f} s   {total / wall:5.0f} judgements/s   "
                  f"ratio {wall / wide_ideal:4.2f}   {wall / wide_ref:4.2f} x one-process litellm")


if __name__ == "__main__":
    main()
