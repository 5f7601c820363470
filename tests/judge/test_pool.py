"""Judge calls from several processes: a real stub judge on 127.0.0.1, real helper processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from stub_judge import YES, StubJudge

from atif import upload
from atif.cli import cli
from atif.judge import client
from atif.judge.pacing import Pacer
from atif.judge.pool import CallPool
from atif.store import Store

CONTENT = YES


@pytest.fixture
def judge() -> Iterator[StubJudge]:
    stub = StubJudge(delay=0.05)
    yield stub
    stub.close()


def _request(api_base: str) -> dict[str, Any]:
    return {"model": "openai/stub", "api_base": api_base, "api_key": "x", "timeout": 30,
            "messages": [{"role": "user", "content": "Did it work?"}]}


async def _ready(pool: CallPool) -> None:
    deadline = time.monotonic() + 120
    while not all(h.ready for h in pool.helpers):
        assert time.monotonic() < deadline, "helper never became ready"
        await asyncio.sleep(0.1)


def test_helpers_make_calls_and_a_dead_helper_hands_its_calls_back(judge: StubJudge) -> None:
    made_here: list[dict[str, Any]] = []

    async def local(request: dict[str, Any], retries: int, pacer: Pacer) -> tuple[Any, int]:
        made_here.append(request)
        return await client.complete(request, retries=retries, before_attempt=pacer.wait), 0

    async def go() -> tuple[list[Any], list[Any]]:
        pool = CallPool(2, None, local)
        try:
            await _ready(pool)
            helper = pool.helpers[0]
            # Four at once: the pool balances them between this process and the helper.
            first = await asyncio.gather(*(pool.complete(_request(judge.api_base), 0) for _ in range(4)))
            assert len(made_here) == 2
            # A call in flight on a helper that dies is made here instead.
            judge_slow = StubJudge(delay=3.0)
            try:
                pending = [asyncio.ensure_future(pool.complete(_request(judge_slow.api_base), 0)) for _ in range(2)]
                while not helper.inflight:
                    await asyncio.sleep(0.01)
                helper.process.kill()
                second = await asyncio.gather(*pending)
            finally:
                judge_slow.close()
            assert not helper.alive
            return first, second
        finally:
            await pool.close()

    first, second = asyncio.run(go())
    assert all(outcome.content == CONTENT and retried == 0 for outcome, retried in first + second)
    assert len(made_here) == 4  # two of the first four, and both of the later ones


def test_evaluate_with_workers_on_a_file_store_rates_every_pair_once(tmp_path: Path, judge: StubJudge) -> None:
    trials = [{"task_name": f"t{i}", "trajectory": {
        "schema_version": "ATIF-v1.8", "session_id": f"s{i}", "agent": {"name": "bot", "version": "1"},
        "steps": [{"step_id": 1, "source": "user", "message": f"Please do t{i}."},
                  {"step_id": 2, "source": "agent", "message": "Done."}]}} for i in range(30)]
    src = tmp_path / "src"
    src.mkdir()
    (src / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    db = tmp_path / "a.duckdb"
    criteria = [{"label": "done", "question": "Did the agent finish?", "kind": "llm"},
                {"label": "kind", "question": "Was it kind?", "kind": "llm"}]
    with Store(db) as store:
        upload([src], "exp", store=store, create_missing_tasks=True,
               criteria={"name": "cs", "criteria": criteria, "judge": {"model": "openai/stub", "api_base": judge.api_base}})
    result = CliRunner().invoke(cli, ["evaluate", "-e", "exp", "--workers", "2", "--concurrency", "8",
                                      "--format", "json", "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["judged"] == 60 and summary["calls"] == 60 and judge.calls == 60
    with Store(db) as store:
        rows = store._db.execute("SELECT count(*), count(DISTINCT (trial_id, criterion)), "
                                 "count(*) FILTER (verdict = 'YES') FROM rating_data").fetchone()
    assert rows == (60, 60, 60)
