"""Panel entries with their own endpoints: real OpenAI-compatible servers on 127.0.0.1, votes per endpoint."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atif.errors import CriteriaError
from atif.judge import client
from atif.judge.criteria import PanelMember, parse_criteria
from tests.integration.test_judge_server import JudgeServer, answer
from tests.judge.test_engine import build_store, ratings, run, trajectory

pytestmark = pytest.mark.integration

ONE = [{"label": "done", "question": "Did the agent finish the task?", "kind": "llm"}]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RETRY_BASE_SECONDS", 0.001)


def _says(rating: str) -> Any:
    return lambda body: answer(json.dumps({"reasoning": f"Step 2 says {rating}.", "rating": rating, "cited_steps": [2]}))


@pytest.fixture
def servers() -> Iterator[tuple[JudgeServer, JudgeServer, JudgeServer]]:
    with JudgeServer(_says("YES")) as a, JudgeServer(_says("NO")) as b, JudgeServer(_says("YES")) as c:
        yield a, b, c


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_panel_entry_asks_its_own_server(tmp_path: Path, servers: tuple[JudgeServer, ...],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = servers
    monkeypatch.setenv("PANEL_B_KEY", "sk-b-secret")
    panel = [{"model": "openai/house", "api_base": a.api_base},
             {"model": "openai/house", "api_base": b.api_base, "api_key_env": "PANEL_B_KEY"},
             {"model": "openai/other", "api_base": c.api_base, "params": {"top_p": 0.5}}]
    db = build_store(tmp_path, ONE, judge={"panel": panel, "max_retries": 0},
                     trials=[{"task_name": "alpha", "trajectory": trajectory("alpha")}])
    run(db)
    r = ratings(db)[("alpha", "done")]
    votes = json.loads(r["votes"])
    by_base = {v["api_base"]: v["verdict"] for v in votes}
    assert by_base == {a.api_base: "YES", b.api_base: "NO", c.api_base: "YES"}
    assert r["verdict"] == "YES" and r["agreement"] == pytest.approx(2 / 3)
    assert len(a.requests) == len(b.requests) == len(c.requests) == 1
    assert c.requests[0]["top_p"] == 0.5 and "top_p" not in a.requests[0]
    assert r["judge_model"] == "openai/house, openai/other"
    assert "sk-b-secret" not in json.dumps(r, default=str)  # the key is read, never stored


def test_an_unreachable_endpoint_is_a_missing_vote_with_its_reason(tmp_path: Path,
                                                                   servers: tuple[JudgeServer, ...]) -> None:
    a, b, _ = servers
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    panel = [{"model": "openai/house", "api_base": a.api_base}, {"model": "openai/house", "api_base": dead},
             {"model": "openai/house", "api_base": b.api_base}, {"model": "openai/house", "api_base": a.api_base,
                                                                 "params": {"seed": 3}}]
    db = build_store(tmp_path, ONE, judge={"panel": panel, "max_retries": 1},
                     trials=[{"task_name": "alpha", "trajectory": trajectory("alpha")}])
    summary = run(db)
    r = ratings(db)[("alpha", "done")]
    votes = json.loads(r["votes"])
    missing = [v for v in votes if v["verdict"] == "UNSCORED"]
    assert len(missing) == 1 and missing[0]["api_base"] == dead
    assert f" at {dead}: " in missing[0]["error"] and "Connection error" in missing[0]["error"]
    assert r["verdict"] == "YES" and r["agreement"] == pytest.approx(2 / 3)  # the three others count
    assert summary.unscored == 0


def test_a_missing_key_variable_is_that_entrys_missing_vote(tmp_path: Path, servers: tuple[JudgeServer, ...],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = servers
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    panel = [{"model": "openai/house", "api_base": a.api_base},
             {"model": "openai/house", "api_base": b.api_base, "api_key_env": "NO_SUCH_KEY_VAR"},
             {"model": "openai/house", "api_base": a.api_base, "params": {"seed": 1}}]
    db = build_store(tmp_path, ONE, judge={"panel": panel},
                     trials=[{"task_name": "alpha", "trajectory": trajectory("alpha")}])
    run(db)
    r = ratings(db)[("alpha", "done")]
    missing = [v for v in json.loads(r["votes"]) if v["verdict"] == "UNSCORED"]
    assert len(missing) == 1 and "environment variable NO_SUCH_KEY_VAR is not set" in missing[0]["error"]
    assert not b.requests and r["verdict"] == "YES"


def test_panel_entries_are_validated_with_their_path() -> None:
    spec = {"name": "cs", "criteria": [{"label": "x", "question": "q"}]}
    with pytest.raises(CriteriaError, match=r"c.yaml: /judge/panel/1/.*api_bse.*unknown key|/judge/panel/1"):
        parse_criteria({**spec, "judge": {"panel": ["openai/a", {"model": "openai/b", "api_bse": "http://x"}]}},
                       source="c.yaml")
    cf = parse_criteria({**spec, "judge": {"panel": ["openai/a", {"model": "openai/b", "api_base": "http://x"}]}})
    assert cf.judge.model == "openai/a"  # the first member is the run's judge
    assert cf.judge.panel == ["openai/a", PanelMember(model="openai/b", api_base="http://x")]
    assert "model" not in cf.store_spec()["judge"]  # derived, not stored
