"""Repeated judge samples and panels: the majority verdict, every vote, agreement; ties unscored."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from atif.errors import CriteriaError
from atif.judge import client
from atif.judge.criteria import parse_criteria
from atif.judge.votes import sample_key, tally
from atif.store import Store
from tests.judge.test_engine import CHAT, build_store, completion, error, ratings, run

ONE = [{"label": "done", "question": "Did the agent finish the task?", "kind": "llm"}]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RETRY_BASE_SECONDS", 0.001)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def test_samples_store_the_majority_with_votes_and_agreement(tmp_path: Path, api: respx.MockRouter) -> None:
    db = build_store(tmp_path, ONE, judge={"samples": 3}, trials=[{"task_name": "alpha", "trajectory": _traj()}])
    answers = itertools.cycle(["YES", "NO", "YES"])
    route = api.post(CHAT).mock(side_effect=lambda request: completion(rating=next(answers)))
    run(db)
    r = ratings(db)[("alpha", "done")]
    assert r["verdict"] == "YES" and r["agreement"] == pytest.approx(2 / 3)
    votes = json.loads(r["votes"])
    assert sorted(v["verdict"] for v in votes) == ["NO", "YES", "YES"] and {v["sample"] for v in votes} == {0, 1, 2}
    bodies = [json.loads(c.request.content) for c in route.calls]
    assert len(bodies) == 3 and {b["temperature"] for b in bodies} == {0.7}
    assert r["prompt_tokens"] == 3 * 120  # cost and tokens count every sample
    # every sample is cached on its own: a rejudge-free second run asks nothing and agrees
    with Store(db) as store:
        store.save_ratings([{"trial_id": r["trial_id"], "criterion": "done", "verdict": "UNSCORED",
                             "source": "judge", "replace": True}], replace_judge=True)
    run(db)
    assert len(route.calls) == 3
    again = ratings(db)[("alpha", "done")]
    assert again["verdict"] == "YES" and again["cached"] is True


def test_a_panel_model_that_fails_every_call_is_a_missing_vote(tmp_path: Path, api: respx.MockRouter) -> None:
    db = build_store(tmp_path, ONE, judge={"panel": ["openai/gpt-4o-mini", "openai/broken-model"]},
                     trials=[{"task_name": "alpha", "trajectory": _traj()}])

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == "broken-model":
            return error(400, "model broken-model does not exist here")
        return completion(rating="NO")

    api.post(CHAT).mock(side_effect=answer)
    run(db)
    r = ratings(db)[("alpha", "done")]
    assert r["verdict"] == "NO" and r["agreement"] == 1.0
    votes = {v["model"]: v for v in json.loads(r["votes"])}
    assert votes["openai/gpt-4o-mini"]["verdict"] == "NO"
    assert votes["openai/broken-model"]["verdict"] == "UNSCORED"
    assert "does not exist" in votes["openai/broken-model"]["error"]
    assert r["judge_model"] == "openai/gpt-4o-mini, openai/broken-model"


def test_a_tie_is_unscored_with_the_reason(tmp_path: Path, api: respx.MockRouter) -> None:
    criteria = [{**ONE[0], "config": {"panel": ["openai/gpt-4o-mini", "openai/gpt-4o"]}}]
    db = build_store(tmp_path, criteria, trials=[{"task_name": "alpha", "trajectory": _traj()}])
    api.post(CHAT).mock(side_effect=lambda request: completion(
        rating="YES" if json.loads(request.content)["model"] == "gpt-4o" else "NO"))
    run(db)
    r = ratings(db)[("alpha", "done")]
    assert r["verdict"] == "UNSCORED" and r["error"] == "tie: 1 YES, 1 NO" and r["agreement"] == 0.5


def test_tally_and_sample_keys() -> None:
    assert tally([{"verdict": "YES"}, {"verdict": "YES"}, {"verdict": "NO"}]).verdict == "YES"
    none = tally([{"verdict": "UNSCORED", "model": "m", "error": "timeout"}])
    assert none.verdict == "UNSCORED" and none.error == "no vote had a verdict; 1 vote(s) missing (m: timeout)"
    assert sample_key("k", 0) == "k" and sample_key("k", 1) != sample_key("k", 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"judge": {"samples": 0}}, r"^c.yaml: /judge/samples: Input should be greater than or equal to 1"),
        ({"judge": {"panel": []}}, r"^c.yaml: /judge/panel: List should have at least 1 item"),
        ({"criteria": [{"label": "x", "question": "q", "kind": "match", "reference": [], "samples": 3}]},
         "apply to llm criteria only"),
    ],
)
def test_bad_sampling_settings_are_refused(data: dict[str, Any], message: str) -> None:
    spec = {"name": "cs", "criteria": [{"label": "x", "question": "q"}], **data}
    with pytest.raises(CriteriaError, match=message):
        parse_criteria(spec, source="c.yaml")


def test_criterion_settings_are_stored_in_its_config() -> None:
    cf = parse_criteria({"name": "cs", "criteria": [{"label": "x", "question": "q", "samples": 5,
                                                      "panel": ["a/b", "c/d"]}]})
    assert cf.criteria[0].config() == {"samples": 5, "panel": ["a/b", "c/d"]}


def _traj() -> dict[str, Any]:
    from tests.judge.test_engine import trajectory

    return trajectory("alpha")
