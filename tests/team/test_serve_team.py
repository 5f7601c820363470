"""The web app over a team store: the same pages as on a file store, and a label stored through the queue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from team_builders import CRITERIA, basic_trials, write_run

from atif import upload
from atif.store import Store

pytest.importorskip("starlette")
pytest.importorskip("httpx")


def test_pages_and_a_review_label_on_a_team_store(team_db: Any, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from atif.serve import create_app

    with Store(team_db.target, data_path=team_db.data_path) as t:
        upload([write_run(tmp_path / "run", basic_trials(6))], "exp", criteria=CRITERIA, store=t)
        ids = [r["trial_id"] for r in t.read("SELECT trial_id FROM trials WHERE experiment = 'exp' ORDER BY trial_id")]
        t.save_ratings([{"trial_id": i, "criterion": "complete", "verdict": "YES", "source": "judge"} for i in ids])
    trial_id = ids[0]
    app = create_app(team_db.target, reviewer="tester", data_path=team_db.data_path)
    c = TestClient(app, base_url="http://127.0.0.1:8000")
    home = c.get("/")
    assert home.status_code == 200 and 'href="/experiment?e=exp"' in home.text
    page = c.get("/experiment", params={"e": "exp"})
    assert page.status_code == 200 and page.text.count("<tr data-trial=") == 6
    summary = c.get("/experiment/summary", params={"e": "exp"})
    assert summary.status_code == 200 and re.search(r"<tr><td>complete</td><td class=\"num\">6</td>", summary.text)
    assert c.get(f"/trial/{trial_id}").status_code == 200
    review = c.get("/review", params={"e": "exp"})
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', review.text))
    assert form.get("trial_id"), review.text[:500]
    r = c.post("/review/label", data={**form, "verdict": "NO"}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    if form["criterion"] == "complete":  # the label replaced a judge verdict: the summary now corrects by it
        assert ">corrected<" in c.get("/experiment/summary", params={"e": "exp"}).text
    with Store(team_db.target, data_path=team_db.data_path) as t:
        rows = t.read("SELECT verdict, source FROM ratings WHERE trial_id = ? AND criterion = ?",
                      [form["trial_id"], form["criterion"]])
    assert rows == [{"verdict": "NO", "source": "human"}]
