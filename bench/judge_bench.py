"""Judge throughput: 2,000 judgements against a local stub server that answers after 100 ms.

Usage::

    .venv/bin/python bench/judge_bench.py [--judgements 2000] [--concurrency 32] [--delay 0.1]
                                          [--criteria 5]

1. Starts an OpenAI-compatible stub server in a separate process (asyncio, keep-alive), each
   answer sent ``--delay`` seconds after its request arrived.
2. Stores ``judgements / criteria`` trials (real Harbor trajectories, each made distinct) with
   ``--criteria`` llm criteria in a temporary store.
3. Reference: the same number of bare ``litellm.acompletion`` calls with a real judge prompt at
   the same concurrency, nothing else (what litellm alone costs on this machine).
4. Times ``evaluate()`` at ``--concurrency``. The figure is wall time over the ideal
   ``judgements x delay / concurrency``, the time a judge with no overhead of its own would
   need (goal: at most 1.2), and over the reference. litellm is imported and one call made
   before timing: the import is a one-off cost of the process (printed separately).
5. CPU time of this process per judgement (the stub's CPU is not counted).
6. Deletes the ratings and runs again: every answer now comes from the cache (goal: under 10 s
   for 2,000).

The client uses litellm's default HTTP transport (aiohttp), as a user's run does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

GOLDEN = ROOT / "fixtures" / "harbor-golden" / "harbor-v0.1.31" / "tests" / "golden"

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
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _trials(n: int, folder: Path) -> Path:
    sources = sorted(GOLDEN.rglob("*.trajectory*.json"))
    docs = [json.loads(p.read_text()) for p in sources]
    folder.mkdir(parents=True)
    with (folder / "trials.jsonl").open("w") as f:
        for i in range(n):
            doc = dict(docs[i % len(docs)])
            doc["session_id"] = f"bench-{i}"
            f.write(json.dumps({"task_name": f"task-{i}", "trajectory": doc, "trial_id": f"run-{i}"}) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgements", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--criteria", type=int, default=5)
    args = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    stub = multiprocessing.Process(target=_stub, args=(send, args.delay), daemon=True)
    stub.start()
    port = receive.recv()
    api_base = f"http://127.0.0.1:{port}/v1"

    started = time.perf_counter()
    from atif.judge import client

    litellm = client.litellm_module()
    import_s = time.perf_counter() - started

    async def warm() -> None:
        await litellm.acompletion(model="openai/stub-judge", api_base=api_base, api_key="x",
                                  messages=[{"role": "user", "content": "warm up"}])

    asyncio.run(warm())

    import atif
    from atif.judge.engine import evaluate
    from atif.store import Store

    n_trials = args.judgements // args.criteria
    total = n_trials * args.criteria
    criteria = [{"label": f"c{k}", "question": f"Did the agent meet requirement {k}?", "kind": "llm"}
                for k in range(args.criteria)]
    with tempfile.TemporaryDirectory() as tmp:
        src = _trials(n_trials, Path(tmp) / "src")
        db = Path(tmp) / "bench.duckdb"
        with Store(db) as store:
            atif.upload([src], "bench", store=store, create_missing_tasks=True,
                        criteria={"name": "bench", "criteria": criteria,
                                  "judge": {"model": "openai/stub-judge", "api_base": api_base}})
            from atif.judge.render import render_messages

            messages = render_messages(store, store.pending("bench")[0].trial_id, "c0")["messages"]

            async def reference() -> None:
                gate = asyncio.Semaphore(args.concurrency)

                async def one(i: int) -> None:
                    async with gate:
                        await litellm.acompletion(model="openai/stub-judge", api_base=api_base, api_key="x",
                                                  messages=messages, temperature=0, num_retries=0, max_retries=0,
                                                  response_format={"type": "json_object"})

                await asyncio.gather(*(one(i) for i in range(total)))

            ref0, rcpu0 = time.perf_counter(), time.process_time()
            asyncio.run(reference())
            ref, rcpu = time.perf_counter() - ref0, time.process_time() - rcpu0

            wall0, cpu0 = time.perf_counter(), time.process_time()
            summary = evaluate(store, "bench", concurrency=args.concurrency)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            assert summary.judged == total, summary

            store._db.execute("DELETE FROM rating_data")
            cached0, ccpu0 = time.perf_counter(), time.process_time()
            again = evaluate(store, "bench", concurrency=args.concurrency)
            cached, ccpu = time.perf_counter() - cached0, time.process_time() - ccpu0
            assert again.cached == total and again.calls == 0, again
    stub.terminate()

    ideal = total * args.delay / args.concurrency
    print(f"judge benchmark: {total} judgements ({n_trials} trials x {args.criteria} criteria), "
          f"stub answers after {args.delay * 1000:.0f} ms, concurrency {args.concurrency}, {os.cpu_count()} CPUs")
    print(f"  litellm import (once per process)  {import_s:6.2f} s")
    print(f"  bare litellm calls (reference)     {ref:6.2f} s   ideal {ideal:.2f} s   "
          f"ratio {ref / ideal:.2f}   {rcpu / total * 1000:.2f} ms CPU per call")
    print(f"  evaluate wall time                 {wall:6.2f} s   ideal {ideal:.2f} s   "
          f"ratio {wall / ideal:.2f}  (goal <= 1.2);  {wall / ref:.2f} x the reference")
    print(f"  CPU time per judgement             {cpu / total * 1000:6.2f} ms   "
          f"(litellm alone {rcpu / total * 1000:.2f} ms)")
    print(f"  fully cached re-run                {cached:6.2f} s   ({ccpu / total * 1000:.2f} ms CPU per judgement, "
          f"goal < 10 s)")


if __name__ == "__main__":
    main()
