"""Pending pairs, rating precedence, and the judge cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_builders import basic_trials, write_run

from atif import upload
from atif.errors import NotFoundError, StoreError
from atif.store import PendingRating, Store


@pytest.fixture
def store(tmp_path: Path, criteria: dict[str, Any]) -> Store:
    criteria["criteria"].append({"label": "calls", "question": "Tool calls as expected?", "kind": "match",
                                 "config": {"reference": ["bash"], "mode": "subset", "arguments": "ignore"}})
    trials = basic_trials(3)
    trials[2]["criterion_ratings"] = [{"criterion": "complete", "rating": "YES"}]
    s = Store(tmp_path / "s.duckdb")
    upload([write_run(tmp_path / "out", trials)], "exp", criteria=criteria, store=s)
    yield s
    s.close()


def _trial(store: Store, task: str) -> str:
    return next(t["trial_id"] for t in store.trials("exp") if t["task_name"] == task)


def test_pending_lists_unrated_pairs_in_order(store: Store) -> None:
    pending = store.pending("exp")
    assert len(pending) == 3 * 3 - 1 == store.pending_count("exp")
    first = pending[0]
    assert isinstance(first, PendingRating)
    assert (first.criterion, first.question, first.kind, first.config) == (
        "complete", "Did the agent complete the task?", "llm", {})
    match = next(p for p in pending if p.kind == "match")
    assert match.config == {"reference": ["bash"], "mode": "subset", "arguments": "ignore"}
    assert {(p.task_name, p.criterion) for p in pending if p.task_name == "task-2"} == {
        ("task-2", "safe"), ("task-2", "calls")}
    assert [p.criterion for p in store.pending("exp", labels=["safe"])] == ["safe"] * 3

    store.save_rating(_trial(store, "task-0"), "safe", "UNSCORED", source="judge", error="timeout")
    # An UNSCORED rating is a rating: the pair is no longer pending (re-judge with --rejudge).
    assert len(store.pending("exp")) == 7


def test_pending_of_unknown_experiment(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no experiment 'nope'; stored experiments: exp"):
        store.pending("nope")


def test_precedence_never_lets_a_lower_source_overwrite(store: Store) -> None:
    tid = _trial(store, "task-0")

    def current() -> tuple[str, str]:
        return store.query(
            "SELECT verdict, source FROM ratings WHERE trial_id = ? AND criterion = 'safe'", [tid])[1][0]

    assert store.save_rating(tid, "safe", "NO", source="judge", judge_model="m1", prompt_tokens=10, cost_usd=0.01)
    assert not store.save_rating(tid, "safe", "YES", source="judge", judge_model="m1")
    assert current() == ("NO", "judge")
    assert store.save_rating(tid, "safe", "YES", source="judge", replace_judge=True)
    assert current() == ("YES", "judge")
    assert store.save_rating(tid, "safe", "NO", source="match")
    assert not store.save_rating(tid, "safe", "YES", source="judge", replace_judge=True)
    assert store.save_rating(tid, "safe", "YES", source="human", reasoning="looked myself")
    for lower in ("precomputed", "function", "match", "judge"):
        assert not store.save_rating(tid, "safe", "NO", source=lower, replace_judge=True)
    assert current() == ("YES", "human")
    assert store.save_rating(tid, "safe", "NO", source="human")
    assert current() == ("NO", "human")

    pre = _trial(store, "task-2")
    assert not store.save_rating(pre, "complete", "NO", source="judge", replace_judge=True)
    assert store.save_rating(pre, "complete", "NO", source="human")


def test_save_rating_stores_every_field(store: Store) -> None:
    tid = _trial(store, "task-1")
    store.save_rating(tid, "complete", "YES", source="judge", reasoning="because", cited_steps=[2, 3],
                      judge_model="openai/gpt-4o-mini", prompt_tokens=120, completion_tokens=30, cached_tokens=100,
                      cost_usd=0.0002, latency_ms=350.0, cache_key="k1", cached=False, truncated=True,
                      prompt_version="v1", raw_output='{"rating": "YES"}')
    r = store.trial(tid)["ratings"][0]
    assert (r["criterion"], r["verdict"], r["cited_steps"], r["truncated"], r["cache_key"], r["raw_output"]) == (
        "complete", "YES", [2, 3], True, "k1", '{"rating": "YES"}')
    usage = store.query("SELECT calls, cache_hits, prompt_tokens, cost_usd FROM judge_usage")[1]
    assert usage == [(1, 0, 120, 0.0002)]


def test_save_rating_checks_its_input(store: Store) -> None:
    tid = _trial(store, "task-0")
    with pytest.raises(StoreError, match="verdict"):
        store.save_rating(tid, "safe", "MAYBE", source="judge")
    with pytest.raises(StoreError, match="source"):
        store.save_rating(tid, "safe", "YES", source="oracle")
    with pytest.raises(NotFoundError, match="no trial"):
        store.save_rating("0" * 64, "safe", "YES", source="judge")
    with pytest.raises(NotFoundError, match="no criterion 'tone'"):
        store.save_rating(tid, "tone", "YES", source="judge")


def test_judge_cache_round_trip(store: Store) -> None:
    assert store.cache_get("abc") is None
    store.cache_put("abc", model="m", verdict="NO", reasoning="r", cited_steps=[1], prompt_tokens=5,
                    completion_tokens=2, cost_usd=None, latency_ms=12.5, truncated=False, raw_output="NO")
    got = store.cache_get("abc")
    assert got is not None
    assert (got["verdict"], got["reasoning"], got["cited_steps"], got["cost_usd"], got["latency_ms"]) == (
        "NO", "r", [1], None, 12.5)
    store.cache_put("abc", model="m", verdict="YES")
    assert store.cache_get("abc")["verdict"] == "YES"


def test_read_only_store_refuses_writes(store: Store, tmp_path: Path) -> None:
    store.close()
    with Store.open(tmp_path / "s.duckdb", read_only=True) as ro:
        assert len(ro.pending("exp")) == 8
        with pytest.raises(StoreError, match="read-only"):
            ro.save_rating(_trial(ro, "task-0"), "safe", "YES", source="judge")
        with pytest.raises(StoreError, match="read-only"):
            upload([tmp_path / "out"], "exp", store=ro)


def _verdicts(store: Store) -> dict[tuple[str, str], tuple[str, str]]:
    rows = store.query("SELECT task_name, criterion, verdict, source FROM ratings")[1]
    return {(t, c): (v, s) for t, c, v, s in rows}


def test_save_ratings_applies_precedence_row_by_row(store: Store) -> None:
    t0, t1, t2 = (_trial(store, f"task-{i}") for i in range(3))
    kept = store.save_ratings([
        {"trial_id": t0, "criterion": "safe", "verdict": "NO", "source": "judge", "judge_model": "m"},
        {"trial_id": t0, "criterion": "safe", "verdict": "YES", "source": "judge"},  # judge over judge: no
        {"trial_id": t1, "criterion": "safe", "verdict": "NO", "source": "match"},
        {"trial_id": t1, "criterion": "safe", "verdict": "YES", "source": "human"},  # higher source wins
        {"trial_id": t1, "criterion": "safe", "verdict": "NO", "source": "precomputed"},  # lower: no
        # Below the precomputed rating, even as a re-judge.
        {"trial_id": t2, "criterion": "complete", "verdict": "NO", "source": "judge", "replace": True},
    ])
    assert kept == [True, False, True, True, False, False]
    got = _verdicts(store)
    assert got[("task-0", "safe")] == ("NO", "judge")
    assert got[("task-1", "safe")] == ("YES", "human")
    assert got[("task-2", "complete")] == ("YES", "precomputed")
    assert store.query("SELECT count(*) FROM rating_data WHERE criterion = 'safe'")[1] == [(2,)]

    # `replace` per row: True re-judges, False fills gaps only; replace_judge is the default for the rest.
    kept = store.save_ratings([
        {"trial_id": t0, "criterion": "safe", "verdict": "YES", "source": "judge", "replace": True},
        {"trial_id": t0, "criterion": "complete", "verdict": "YES", "source": "function", "replace": False},
        {"trial_id": t0, "criterion": "complete", "verdict": "NO", "source": "human", "replace": False},
    ])
    assert kept == [True, True, False]
    assert store.save_ratings([{"trial_id": t0, "criterion": "safe", "verdict": "NO", "source": "judge"}],
                              replace_judge=True) == [True]
    got = _verdicts(store)
    assert got[("task-0", "safe")] == ("NO", "judge")
    assert got[("task-0", "complete")] == ("YES", "function")


def test_save_ratings_is_one_transaction(store: Store) -> None:
    t0, t1 = _trial(store, "task-0"), _trial(store, "task-1")
    store.save_rating(t0, "safe", "NO", source="judge")
    bad = [
        {"trial_id": t0, "criterion": "safe", "verdict": "YES", "source": "human"},  # replaces: delete + insert
        {"trial_id": t1, "criterion": "safe", "verdict": "YES", "source": "judge", "prompt_tokens": "lots"},
    ]
    with pytest.raises(StoreError, match="cannot store the ratings"):
        store.save_ratings(bad, cache=[{"cache_key": "k", "verdict": "YES"}])
    assert _verdicts(store) == {
        ("task-0", "safe"): ("NO", "judge"), ("task-2", "complete"): ("YES", "precomputed")}
    assert store.cache_get("k") is None
    # Nothing is half-written either when a row names an unknown trial; skip_unknown passes it over.
    rows = [{"trial_id": t1, "criterion": "safe", "verdict": "YES", "source": "judge"},
            {"trial_id": "0" * 64, "criterion": "safe", "verdict": "YES", "source": "judge"},
            {"trial_id": t1, "criterion": "tone", "verdict": "YES", "source": "judge"}]
    with pytest.raises(NotFoundError, match="no trial"):
        store.save_ratings(rows)
    with pytest.raises(NotFoundError, match="no criterion 'tone'"):
        store.save_ratings([rows[0], rows[2]])
    assert ("task-1", "safe") not in _verdicts(store)
    assert store.save_ratings(rows, skip_unknown=True) == [True, False, False]
    assert _verdicts(store)[("task-1", "safe")] == ("YES", "judge")


def test_save_ratings_checks_rows_before_writing(store: Store) -> None:
    tid = _trial(store, "task-0")
    good = {"trial_id": tid, "criterion": "safe", "verdict": "YES", "source": "judge"}
    for bad, message in (({"verdict": "MAYBE"}, "verdict"), ({"source": "oracle"}, "source"),
                         ({"trial_id": None}, "trial_id"), ({"tokens": 3}, "unknown rating field 'tokens'")):
        with pytest.raises(StoreError, match=message):
            store.save_ratings([good, {**good, **bad}])
    with pytest.raises(StoreError, match="unknown cache field"):
        store.save_ratings([good], cache=[{"cache_key": "k", "verdict": "YES", "colour": "red"}])
    assert store.pending_count("exp") == 8
    assert store.save_ratings([]) == []


def test_save_ratings_cache_entries_and_cache_get_many(store: Store) -> None:
    tid = _trial(store, "task-0")
    row = {"trial_id": tid, "criterion": "safe", "verdict": "YES", "source": "judge", "cache_key": "k1"}
    store.save_ratings([row], cache=[{"cache_key": "k1", "verdict": "YES", "model": "m", "cited_steps": (2,)},
                                     {"cache_key": "k2", "verdict": "NO", "prompt_tokens": 7}])
    store.save_ratings([], cache=[{"cache_key": "k1", "verdict": "NO"}])  # the first answer stays
    got = store.cache_get_many(["k1", "k2", "k3", "k1"])
    assert set(got) == {"k1", "k2"}
    assert (got["k1"]["verdict"], got["k1"]["model"], got["k1"]["cited_steps"], got["k1"]["truncated"]) == (
        "YES", "m", [2], False)
    assert got["k2"]["prompt_tokens"] == 7 and got["k2"] == store.cache_get("k2")
    store.save_ratings([], cache=[{"cache_key": "k1", "verdict": "NO", "replace": True}])
    assert store.cache_get("k1")["verdict"] == "NO"
    assert store.cache_get_many([]) == {}


def test_trials_by_id_matches_trial(store: Store) -> None:
    ids = [_trial(store, f"task-{i}") for i in range(3)]
    got = store.trials_by_id([ids[0], "0" * 64, ids[2], ids[0]])
    assert set(got) == {ids[0], ids[2]}
    one = store.trial(ids[2])
    assert one.pop("ratings") and one == got[ids[2]]
    assert got[ids[0]]["trajectory"]["steps"][0]["source"] == "user"
    assert store.trials_by_id([]) == {}


def test_rated_pairs_by_source_verdict_and_label(store: Store) -> None:
    t0, t1 = _trial(store, "task-0"), _trial(store, "task-1")
    store.save_ratings([
        {"trial_id": t0, "criterion": "safe", "verdict": "UNSCORED", "source": "judge", "error": "timeout"},
        {"trial_id": t1, "criterion": "safe", "verdict": "YES", "source": "judge"},
        {"trial_id": t1, "criterion": "calls", "verdict": "NO", "source": "match"},
        {"trial_id": t0, "criterion": "complete", "verdict": "YES", "source": "human"},
    ])
    pairs = store.rated_pairs("exp")
    assert {(p.task_name, p.criterion) for p in pairs} == {
        ("task-0", "safe"), ("task-1", "safe"), ("task-1", "calls")}
    calls = next(p for p in pairs if p.criterion == "calls")
    assert (calls.kind, calls.config["mode"]) == ("match", "subset")
    unscored = store.rated_pairs("exp", verdicts=["UNSCORED"])
    assert [(p.task_name, p.criterion) for p in unscored] == [("task-0", "safe")]
    assert [p.criterion for p in store.rated_pairs("exp", ["calls"])] == ["calls"]
    assert {(p.task_name, p.criterion) for p in store.rated_pairs("exp", sources=["human", "precomputed"])} == {
        ("task-0", "complete"), ("task-2", "complete")}
    with pytest.raises(StoreError, match="source must be one of"):
        store.rated_pairs("exp", sources=["oracle"])
    with pytest.raises(NotFoundError):
        store.rated_pairs("nope")


@pytest.mark.parametrize("given", [[{"sample": 0, "verdict": "YES"}, {"sample": 1, "verdict": "NO"}],
                                   '[{"sample": 0, "verdict": "YES"}, {"sample": 1, "verdict": "NO"}]'])
def test_votes_given_as_a_list_or_as_json_text_are_stored_as_the_same_json(store: Store, given: Any) -> None:
    t = _trial(store, "task-0")
    assert store.save_ratings([{"trial_id": t, "criterion": "safe", "verdict": "UNSCORED", "source": "judge",
                                "votes": given, "agreement": 0.5}]) == [True]
    row = store.read_one("SELECT votes::VARCHAR, json_extract_string(votes, '$[1].verdict') FROM ratings "
                         "WHERE trial_id = ? AND criterion = 'safe'", [t])
    assert row[1] == "NO" and row[0].replace(" ", "") == '[{"sample":0,"verdict":"YES"},{"sample":1,"verdict":"NO"}]'
