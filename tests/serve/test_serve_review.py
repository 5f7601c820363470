"""The review queue: order, hidden judge verdict, stored labels, stale labels, concurrent reviewers."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from serve_builders import client

from atif.serve.review import next_pair
from atif.store import Store

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def _form(text: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', text))


def _label(c: Any, verdict: str, e: str = "mini", **extra: str) -> Any:
    form = _form(c.get("/review", params={"e": e}).text)
    return c.post("/review/label", data={**form, "verdict": verdict, **extra}, follow_redirects=False), form


def test_queue_order_unscored_then_disagreement_then_sample(store_path: Path) -> None:
    with Store.open(store_path, read_only=True) as s:
        order = [next_pair(s, "mini", ["ok"], position=i) for i in range(5)]
    assert [(p.trial_id, p.tier) for p in order if p] == [(A, 0), (D, 0), (C, 2), (B, 3)]
    assert order[4] is None and order[0].remaining == 4  # type: ignore[union-attr]


def test_sampled_verdicts_that_disagree_come_before_disagreements_with_exact_checks(store_path: Path) -> None:
    with Store.open(store_path) as s:
        assert s.save_ratings([{"trial_id": B, "criterion": "ok", "verdict": "YES", "source": "judge",
                                "votes": [{"sample": i, "verdict": v} for i, v in enumerate("YYN")],
                                "agreement": 2 / 3, "replace": True}]) == [True]
        order = [next_pair(s, "mini", ["ok"], position=i) for i in range(4)]
    assert [(p.trial_id, p.tier) for p in order if p] == [(A, 0), (D, 0), (B, 1), (C, 2)]


def test_queue_leaves_out_labelled_pairs_and_puts_skipped_last(store_path: Path) -> None:
    with Store.open(store_path) as s:
        s.save_rating(A, "ok", "YES", source="human")
        first = next_pair(s, "mini", ["ok"])
        skipped = next_pair(s, "mini", ["ok"], skipped=[f"{D}/ok"])
        held = next_pair(s, "mini", ["ok"], held=[f"{D}/ok", f"{C}/ok"])
    assert first is not None and first.trial_id == D and first.remaining == 3
    assert skipped is not None and skipped.trial_id == C
    assert held is not None and held.trial_id == B and held.remaining == 1


def test_judge_verdict_is_hidden_until_answered(app: Any, store_path: Path) -> None:
    c = client(app)
    with Store.open(store_path) as s:  # give the first pair a judge rating with a recognisable reasoning
        s.save_rating(A, "ok", "UNSCORED", source="judge", reasoning="JUDGE-SECRET-REASONING", judge_model="jm-1")
    page = c.get("/review", params={"e": "mini"}).text
    assert 'name="trial_id" value="' + A in page
    assert "JUDGE-SECRET-REASONING" not in page and "jm-1" not in page and "v-UNSCORED" not in page
    r, _ = _label(c, "YES")
    after = c.get(r.headers["location"]).text
    assert "Before your label it was" in after and "JUDGE-SECRET-REASONING" in after and "jm-1" in after


def test_label_is_a_human_rating_with_reviewer_time_and_replaced_rating(app: Any, store_path: Path) -> None:
    c = client(app)
    _label(c, "YES", note="looks right")  # A (unrated)
    _label(c, "NO", note="", reviewer="bob")  # D (unscored judge rating)
    with Store.open(store_path, read_only=True) as s:
        a = next(r for r in s.trial(A)["ratings"] if r["criterion"] == "ok")
        d = next(r for r in s.trial(D)["ratings"] if r["criterion"] == "ok")
    assert (a["source"], a["verdict"], a["reasoning"], a["judge_model"]) == ("human", "YES", "looks right", None)
    assert orjson.loads(a["raw_output"])["reviewer"] == "tester" and a["created_at"] is not None
    assert orjson.loads(a["raw_output"])["replaced"] is None
    extra = orjson.loads(d["raw_output"])
    assert extra["reviewer"] == "bob" and extra["replaced"]["verdict"] == "UNSCORED"
    assert extra["replaced"]["source"] == "judge" and d["reasoning"] is None


@pytest.mark.parametrize("change", ["other reviewer", "judge re-run", "precomputed upload"])
def test_stale_label_is_refused(app: Any, store_path: Path, change: str) -> None:
    c = client(app)
    form = _form(c.get("/review", params={"e": "mini"}).text)
    assert form["trial_id"] == A
    with Store.open(store_path) as s:
        if change == "other reviewer":
            s.save_rating(A, "ok", "NO", source="human", reasoning="first")
        elif change == "judge re-run":
            s.save_rating(A, "ok", "NO", source="judge")
        else:
            s.save_rating(A, "ok", "NO", source="precomputed")
    r = c.post("/review/label", data={**form, "verdict": "YES"}, follow_redirects=False)
    assert r.status_code == 409
    assert "changed after you opened it" in r.text and "your label was not stored" in r.text
    with Store.open(store_path, read_only=True) as s:
        assert s.read("SELECT verdict FROM ratings WHERE trial_id = ? AND criterion = 'ok'", [A]) == [
            {"verdict": "NO"}]


def test_bad_labels_are_refused(app: Any, store_path: Path) -> None:
    c = client(app)
    form = _form(c.get("/review", params={"e": "mini"}).text)
    for bad in ({"verdict": "MAYBE"}, {"verdict": "UNSCORED"}, {"verdict": "YES", "trial_id": ""}):
        r = c.post("/review/label", data={**form, **bad}, follow_redirects=False)
        assert r.status_code == 400
    r = c.post("/review/label", data={**form, "verdict": "YES", "trial_id": "f" * 64}, follow_redirects=False)
    assert r.status_code == 404 and "no trial" in r.text
    r = c.post("/review/label", content=b"x" * 70_000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_two_reviewers_get_different_pairs_and_lose_nothing(app: Any, store_path: Path) -> None:
    alice, bob = client(app), client(app)
    pa = _form(alice.get("/review", params={"e": "mini"}).text)
    pb = _form(bob.get("/review", params={"e": "mini"}).text)
    assert pa["trial_id"] != pb["trial_id"]  # the first is claimed by alice while she looks at it
    errors: list[Any] = []

    def run(c: Any, name: str) -> None:
        try:
            for _ in range(2):
                r, _f = _label(c, "YES", reviewer=name)
                assert r.status_code == 303, r.text
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(alice, "alice")), threading.Thread(target=run, args=(bob, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Store.open(store_path, read_only=True) as s:
        rows = s.trial(A)["ratings"] + s.trial(B)["ratings"] + s.trial(C)["ratings"] + s.trial(D)["ratings"]
    humans = [orjson.loads(r["raw_output"])["reviewer"] for r in rows if r["source"] == "human"]
    assert sorted(humans) == ["alice", "alice", "bob", "bob"]
    assert "Nothing left to review" in alice.get("/review", params={"e": "mini"}).text


def test_keyboard_links_move_through_the_queue(app: Any) -> None:
    c = client(app)
    page = c.get("/review", params={"e": "mini"}).text
    assert 'id="next" href="/review?e=mini&amp;pos=1"' in page and 'id="prev"' not in page
    second = c.get("/review", params={"e": "mini", "pos": "1"}).text
    assert _form(second)["trial_id"] == D and 'id="prev" href="/review?e=mini"' in second
    skip = re.search(r'id="skip" href="([^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert _form(c.get(skip).text)["trial_id"] == D  # A was skipped: it goes last
