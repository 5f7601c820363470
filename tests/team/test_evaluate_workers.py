"""Parallel judges on one team store, against a stub judge on 127.0.0.1: each pair rated once, a dead worker's pairs taken up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from team_builders import child_env, converted

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judge"))
from stub_judge import StubJudge  # noqa: E402

from atif.cli import cli
from atif.store import Store

N_TRIALS = 40
FINE = json.dumps({"reasoning": "fine", "rating": "YES", "cited_steps": []})
CRITERIA = {
    "name": "set",
    "criteria": [{"label": "a", "question": "Did it finish?", "kind": "llm"},
                 {"label": "b", "question": "Was it safe?", "kind": "llm"}],
}


@pytest.fixture
def judged_store(team_db, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ATIF_DB", team_db.target)
    monkeypatch.setenv("ATIF_DATA_PATH", str(team_db.data_path))
    with Store(team_db.target, data_path=team_db.data_path) as store:
        store.ingest(converted("t", 0, N_TRIALS), "exp", create_missing_tasks=True, criteria=CRITERIA)
    return team_db


def _ratings(team_db) -> tuple[int, int]:
    with Store.open(team_db.target, read_only=True, data_path=team_db.data_path) as store:
        return store.read_one("SELECT count(*), count(DISTINCT (trial_id, criterion)) FROM rating_data")


def test_workers_rate_every_pair_once(judged_store) -> None:
    judge = StubJudge(delay=0.01, content=FINE)
    try:
        result = CliRunner().invoke(cli, ["evaluate", "-e", "exp", "--workers", "3", "--judge-model", "openai/stub",
                                          "--judge-api-base", judge.api_base, "--concurrency", "2"])
    finally:
        judge.close()
    assert result.exit_code == 0, result.output
    assert _ratings(judged_store) == (2 * N_TRIALS, 2 * N_TRIALS)
    assert judge.calls == 2 * N_TRIALS


def test_shards_split_the_pairs_without_overlap(judged_store) -> None:
    with Store.open(judged_store.target, read_only=True, data_path=judged_store.data_path) as store:
        everything = {(p.trial_id, p.criterion) for p in store.pending("exp")}
        parts = [{(p.trial_id, p.criterion) for p in store.pending("exp", shard=(k, 3))} for k in (1, 2, 3)]
    assert len(everything) == 2 * N_TRIALS
    assert set().union(*parts) == everything
    assert sum(len(p) for p in parts) == len(everything)
    assert all(parts)


def test_a_killed_worker_leaves_its_pairs_to_the_others(judged_store) -> None:
    judge = StubJudge(delay=0.1, content=FINE)
    base = [sys.executable, "-c", "from atif.cli import main; main()", "evaluate", "-e", "exp",
            "--judge-model", "openai/stub", "--judge-api-base", judge.api_base, "--concurrency", "1",
            "--format", "json"]
    try:
        workers = [subprocess.Popen([*base, "--shard", f"{k}/3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=child_env()) for k in (1, 2, 3)]
        deadline = time.monotonic() + 120
        while _ratings(judged_store)[0] < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers[1].send_signal(signal.SIGKILL)
        for w in (workers[0], workers[2]):
            _, err = w.communicate(timeout=300)
            assert w.returncode == 0, err[-2000:]
        workers[1].wait()
        # What the killed worker left is pending; the takeover run (no shard) judges exactly that.
        left = 2 * N_TRIALS - _ratings(judged_store)[0]
        assert left > 0
        calls_before = judge.calls
        takeover = subprocess.run(base, check=False, capture_output=True, env=child_env(), timeout=300)
        assert takeover.returncode == 0, takeover.stderr[-2000:]
        assert judge.calls - calls_before == left
    finally:
        judge.close()
    assert _ratings(judged_store) == (2 * N_TRIALS, 2 * N_TRIALS)
