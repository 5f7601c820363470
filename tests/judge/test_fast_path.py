"""The judge run's fast paths change nothing: same prompts, same cache keys, same ratings; a run
that sends nothing imports no litellm; a failed store write still stops the run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from atif import upload
from atif.errors import StoreError
from atif.judge import client, engine
from atif.judge.engine import evaluate
from atif.store import Store

API = "http://judge.test/v1"
CHAT = f"{API}/chat/completions"
ROOT = Path(__file__).resolve().parents[2]
ANSWER = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "finish_reason": "stop", "message": {
              "role": "assistant", "content": '{"reasoning": "ok", "rating": "YES", "cited_steps": [2]}'}}],
          "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


def _trajectory(task: str) -> dict[str, Any]:
    return {"schema_version": "ATIF-v1.8", "session_id": task, "agent": {"name": "bot", "version": "1"},
            "steps": [{"step_id": 1, "source": "user", "message": f"Please do {task}. ünïcödé"},
                      {"step_id": 2, "source": "agent", "message": "ok " * 3000,
                       "tool_calls": [{"tool_call_id": "c1", "function_name": "write_file", "arguments": {"p": 1}}],
                       "observation": {"results": [{"source_call_id": "c1", "content": "written " * 4000}]}},
                      {"step_id": 3, "source": "agent", "message": "Done."}]}


def _store(tmp_path: Path, model: str, judge: dict[str, Any] | None = None) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "trials.jsonl").write_text("".join(
        json.dumps({"task_name": t, "trajectory": _trajectory(t)}) + "\n" for t in ("alpha", "beta")))
    db = tmp_path / "a.duckdb"
    criteria = [{"label": "done", "question": "Did the agent finish the task?", "kind": "llm"},
                {"label": "wrote", "question": "Did it write a file?", "kind": "match",
                 "config": {"reference": ["write_file"], "mode": "superset", "arguments": "ignore"}}]
    with Store(db) as store:
        upload([src], "exp", create_missing_tasks=True, store=store,
               criteria={"name": "cs", "criteria": criteria, "judge": {"model": model, "api_base": API, **(judge or {})}})
    return db


@pytest.fixture
def api() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(CHAT).mock(side_effect=lambda request: httpx.Response(200, json=ANSWER))


def _stored(db: Path) -> list[tuple[Any, ...]]:
    with Store(db) as store:
        return sorted(store._db.execute(
            "SELECT trial_id, criterion, verdict, source, cache_key, truncated, reasoning FROM rating_data").fetchall())


def _clear_ratings(db: Path) -> None:
    with Store(db) as store:
        store._db.execute("DELETE FROM rating_data")


# What the judge sent and stored before the fast paths existed (same trajectories, same litellm):
# a model litellm knows (JSON schema, its tokenizer), one it does not (JSON mode, chars / 4), and a
# budget small enough to elide the transcript (counted with the model's tokenizer).
PINNED = {
    "known": ("openai/gpt-4o-mini", {},
              ["181e2f17bd8e67fc4c830d6b84f3742099a5e7ac36735671a9c10f11478c6dc3",
               "acc1da229dc8a976206787d57942226139cbc9ac298d918341bee5895ae13368"],
              ["0bf84c68d8f031d4b1480c46dde4d439157e3e3791ca7d04924a8a2018589f78",
               "36fd7b895d41c829496f7a578daed64b9786a3b16d73c958b28c49cc37cd4cd5"], False),
    "unknown": ("openai/some-vllm-model", {},
                ["181e2f17bd8e67fc4c830d6b84f3742099a5e7ac36735671a9c10f11478c6dc3",
                 "acc1da229dc8a976206787d57942226139cbc9ac298d918341bee5895ae13368"],
                ["98c8b20a6fc5017db1ccc4d71c741e5dd93cd7321f7c62cd3840f13370c84daf",
                 "d4cc1c7038b04e4e833ed9c3c916915c3dc46499cf2035cf5452e16e7411bdc4"], False),
    "elided": ("openai/gpt-4o-mini", {"max_input_tokens": 3000},
               ["504c24fd77c948735f645dc087609a5bb45d6a3836529dc8bf4258b7a1bec65d",
                "c5b9f263dfc533bfbb92eeb6887c05cfb2d964742a345abaa2005802888e8e36"],
               ["b25120880fa665a5ed52d280b66c81fe2bcdb0249bbf1de2e70ed2449402d5b1",
                "ca98314f170fdedd8173dd8b8525f338e9fc8807be396298bcf52b892e2e321f"], True),
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_prompts_and_cache_keys_are_unchanged(tmp_path: Path, api: respx.Route, case: str) -> None:
    model, judge, prompts, keys, truncated = PINNED[case]
    db = _store(tmp_path, model, judge)
    with Store(db) as store:
        evaluate(store, "exp")
    sent = sorted(hashlib.sha256(json.dumps(json.loads(c.request.content)["messages"], ensure_ascii=False).encode())
                  .hexdigest() for c in api.calls)
    assert sent == prompts
    llm = [r for r in _stored(db) if r[1] == "done"]
    assert sorted(r[4] for r in llm) == keys
    assert all(r[2] == "YES" and r[5] is truncated for r in llm)


def test_a_fully_cached_run_stores_the_same_ratings_without_litellm(tmp_path: Path, api: respx.Route) -> None:
    db = _store(tmp_path, "openai/gpt-4o-mini")
    with Store(db) as store:
        evaluate(store, "exp")
    first = _stored(db)
    assert api.call_count == 2
    _clear_ratings(db)
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('litellm imported:', 'litellm' in sys.modules, file=sys.stderr))\n"
            "from atif.cli import main\n"
            "main()\n")

    def cli() -> tuple[dict[str, Any], str]:
        done = subprocess.run([sys.executable, "-c", code, "evaluate", "-e", "exp", "--db", str(db),
                               "--format", "json"], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ),
                              check=True)
        return json.loads(done.stdout), done.stderr.strip().splitlines()[-1]

    summary, imported = cli()
    assert summary["cached"] == 2 and summary["calls"] == 0 and summary["match"] == 2
    assert imported == "litellm imported: False"
    assert _stored(db) == first
    # What the model is (its output mode, its input budget) comes from the memo of litellm's
    # answers that the first run left in ATIF_HOME; without it litellm is asked again.
    (Path(os.environ["ATIF_HOME"]) / "model-facts.json").unlink()
    _clear_ratings(db)
    summary, imported = cli()
    assert summary["cached"] == 2 and imported == "litellm imported: True"
    assert _stored(db) == first


def test_model_facts_of_another_litellm_are_not_used(tmp_path: Path) -> None:
    path = Path(os.environ["ATIF_HOME"]) / "model-facts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = {"known": True, "max_input_tokens": 7, "structured": "text"}
    path.write_text(json.dumps({"source": "0.0.1|True", "models": {"openai/gpt-4o-mini-stale-check": stale}}))
    client._FACTS.clear()
    facts = client.model_facts("openai/gpt-4o-mini-stale-check")
    assert facts == client.ModelFacts(known=False, max_input_tokens=None, structured="json")
    memo = json.loads(path.read_text())
    assert memo["source"] != "0.0.1|True"
    assert memo["models"]["openai/gpt-4o-mini-stale-check"] == {"known": False, "max_input_tokens": None,
                                                               "structured": "json"}


def test_a_failed_store_write_stops_the_run(tmp_path: Path, api: respx.Route, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _store(tmp_path, "openai/gpt-4o-mini")

    def broken(store: Any, writes: Any) -> list[bool]:
        raise StoreError("disk full")

    monkeypatch.setattr(engine, "write_batch", broken)
    with Store(db) as store, pytest.raises(StoreError, match="disk full"):
        evaluate(store, "exp")
    assert _stored(db) == []
