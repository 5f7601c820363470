"""The web app's pages through Starlette's test client: content, filters, pagination, escaping, live version."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from report_builders import PAYLOADS
from serve_builders import client

from atif.serve.queries import PAGE_SIZE
from atif.serve.security import CSP
from atif.store import Store


def _count(store_path: Path, sql: str, params: list[Any]) -> int:
    with Store.open(store_path, read_only=True) as s:
        return int(s.read_one(sql, params)[0])


def test_experiments_page_lists_and_filters(app: Any) -> None:
    c = client(app)
    r = c.get("/")
    assert r.status_code == 200
    assert 'href="/experiment?e=web"' in r.text and 'href="/experiment?e=mini"' in r.text
    r = c.get("/", params={"name": "MIN"})
    assert 'href="/experiment?e=mini"' in r.text and 'href="/experiment?e=web"' not in r.text
    r = c.get("/", params={"agent": "no-such-agent"})
    assert "No experiments match" in r.text


def test_experiment_page_summary_and_wilson_intervals(app: Any) -> None:
    c = client(app)
    first = c.get("/experiment", params={"e": "web"})
    assert first.status_code == 200 and 'data-fragment="/experiment/summary?e=web"' in first.text
    assert "<tr data-trial=" in first.text  # the table does not wait for the summary
    fragment = c.get("/experiment/summary", params={"e": "web"})
    assert fragment.status_code == 200 and fragment.headers["content-security-policy"] == CSP
    again = c.get("/experiment", params={"e": "web"}).text  # now from the cache, in the page itself
    for text in (fragment.text, again):
        assert "Pass rate per criterion (95% Wilson interval)" in text
        table = text.split('id="criteria"', 1)[1].split("</table>", 1)[0]
        assert "correct" in table and "safe" in table and "92.9% – 100.0%" in table
    cohorts = c.get("/experiment/summary", params={"e": "web", "by": "tag"}).text
    assert 'id="cohorts"' in cohorts and "security" in cohorts


@pytest.mark.parametrize("path", ["/experiment", "/experiment/summary"])
def test_unknown_experiment_is_a_clear_404(app: Any, path: str) -> None:
    r = client(app).get(path, params={"e": "nope"})
    assert r.status_code == 404 and "no trials for experiment &#39;nope&#39;" in r.text


def test_trial_table_paginates_in_sql(app: Any, store_path: Path) -> None:
    c = client(app)
    total = _count(store_path, "SELECT count(*) FROM trials WHERE experiment = ?", ["web"])
    first = c.get("/experiment", params={"e": "web"}).text
    assert first.count("<tr data-trial=") == PAGE_SIZE
    last = c.get("/experiment", params={"e": "web", "page": "2"}).text
    assert last.count("<tr data-trial=") == total - PAGE_SIZE
    seen = set(re.findall(r'data-trial="([0-9a-f]{64})"', first)) | set(re.findall(r'data-trial="([0-9a-f]{64})"', last))
    assert len(seen) == total
    # a page past the end shows the last page, not an empty one
    assert c.get("/experiment", params={"e": "web", "page": "99"}).text.count("<tr data-trial=") == total - PAGE_SIZE


@pytest.mark.parametrize(("params", "sql", "args"), [
    ({"criterion": "correct", "verdict": "NO"},
     "SELECT count(*) FROM ratings WHERE experiment = ? AND criterion = 'correct' AND verdict = 'NO'", ["web"]),
    ({"criterion": "safe", "verdict": "UNSCORED"},
     "SELECT count(*) FROM ratings WHERE experiment = ? AND criterion = 'safe' AND verdict = 'UNSCORED'", ["web"]),
    ({"error": "yes"}, "SELECT count(*) FROM trials WHERE experiment = ? AND error IS NOT NULL", ["web"]),
    ({"q": "task-00"}, "SELECT count(*) FROM trials WHERE experiment = ? AND task_name LIKE '%task-00%'", ["web"]),
    ({"q": "TIMEOUTERROR"}, "SELECT count(*) FROM trials WHERE experiment = ? AND error ILIKE '%timeouterror%'", ["web"]),
])
def test_trial_table_filters(app: Any, store_path: Path, params: dict[str, str], sql: str, args: list[Any]) -> None:
    expected = _count(store_path, sql, args)
    assert expected > 0
    r = client(app).get("/experiment", params={"e": "web", **params})
    assert f"{expected:,} trials match" in r.text


def test_trial_table_sorts(app: Any, store_path: Path) -> None:
    with Store.open(store_path, read_only=True) as s:
        top = s.read("SELECT trial_id FROM trials WHERE experiment = 'web' "
                     "ORDER BY reward DESC NULLS LAST, task_name, epoch, trial_id LIMIT 1")[0]["trial_id"]
    r = client(app).get("/experiment", params={"e": "web", "sort": "reward", "desc": "1"})
    assert re.search(r'data-trial="([0-9a-f]{64})"', r.text).group(1) == top  # type: ignore[union-attr]


@pytest.mark.parametrize("params", [
    {"sort": "reward; DROP TABLE trial_data"}, {"criterion": "x' OR 1=1 --", "verdict": "NO"},
    {"verdict": "YES' --", "criterion": "correct"}, {"error": "maybe"}, {"page": "-3"}, {"page": "abc"},
])
def test_trial_table_ignores_unknown_values(app: Any, params: dict[str, str]) -> None:
    r = client(app).get("/experiment", params={"e": "web", **params})
    assert r.status_code == 200
    assert "60 trials match" in r.text


def test_trial_page_viewer_and_cited_steps(app: Any, ids: dict[str, str]) -> None:
    r = client(app).get(f"/trial/{ids['subagent']}")
    assert r.status_code == 200
    assert 'id="step-3"' in r.text and 'href="#step-3"' in r.text  # the citation links to its step
    assert "Subagent: surveyor (2 steps)" in r.text and 'id="step-sa0-2"' in r.text
    assert '<div class="pair">' in r.text  # the call beside its result
    r = client(app).get(f"/trial/{ids['subagent'][:10]}")  # a unique prefix works
    assert r.status_code == 200


def test_trial_page_collapses_long_outputs_and_shows_timeline(app: Any, ids: dict[str, str]) -> None:
    text = client(app).get(f"/trial/{ids['huge']}").text
    assert 'id="timeline"' in text and text.count("<rect ") == 28  # the 28 timestamped steps
    assert "characters not shown; see the raw trajectory" in text
    assert '<details class="long">' in text
    assert "took 1.0 s" in text


def test_raw_trajectory_is_served_as_json(app: Any, ids: dict[str, str], store_path: Path) -> None:
    r = client(app).get(f"/trial/{ids['hostile']}/raw")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    with Store.open(store_path, read_only=True) as s:
        assert r.content == s.trials_by_id([ids["hostile"]])[ids["hostile"]]["trajectory_bytes"]


@pytest.mark.parametrize("path", ["/", "/experiment?e=web", "TRIAL", "/compare?a=web&b=web", "/calibrate",
                                  "/review?e=web", "/static/serve.js", "/nope"])
def test_every_response_carries_the_csp(app: Any, ids: dict[str, str], path: str) -> None:
    r = client(app).get(path.replace("TRIAL", f"/trial/{ids['hostile']}"))
    assert r.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["TRIAL", "/experiment?e=web&q=hostile", "/", "REVIEW"])
def test_hostile_text_is_escaped(app: Any, ids: dict[str, str], path: str) -> None:
    c = client(app)
    if path == "REVIEW":  # the hostile trial is first in the queue: its criterion `safe` is unscored
        text = c.get("/review", params={"e": "web"}).text
        assert "hostile" in text
    else:
        text = c.get(path.replace("TRIAL", f"/trial/{ids['hostile']}")).text
    for payload in PAYLOADS:
        for needle in ("<script>window", "<img src=x", "<svg onload", "</script><script>"):
            if needle in payload:
                assert needle not in text, (path, needle)
    assert "<script" not in text.replace('<script src="/static/serve.js" defer></script>', "")
    if path != "/":
        assert "&lt;script&gt;window.__pwned" in text


def test_version_changes_when_data_does(app: Any, store_path: Path) -> None:
    c = client(app)
    before = c.get("/api/version").json()["version"]
    assert c.get("/api/version").json()["version"] == before
    with Store.open(store_path) as s:
        s.save_rating("a" * 64, "ok", "NO", source="precomputed")
    assert c.get("/api/version").json()["version"] != before


def test_compare_page(app: Any) -> None:
    r = client(app).get("/compare", params={"a": "web", "b": "web"})
    assert r.status_code == 200 and 'id="compare-criteria"' in r.text
    r = client(app).get("/compare", params={"a": "web", "b": "nope"})
    assert "no trials for experiment &#39;nope&#39;" in r.text


def test_unknown_trial_is_a_clear_404(app: Any) -> None:
    r = client(app).get("/trial/0123456789")
    assert r.status_code == 404 and "no trial &#39;0123456789&#39;" in r.text


def test_long_trajectories_come_in_parts_and_citations_find_their_part(
        app: Any, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from atif.serve import pages

    monkeypatch.setattr(pages, "STEPS_PER_PART", 10)
    tid = ids["huge"]  # 31 steps; its ratings cite steps 2 and 5
    c = client(app)
    first = c.get(f"/trial/{tid}").text
    assert 'id="step-10"' in first and 'id="step-11"' not in first
    assert "steps 1–10 of 31" in first and f'href="/trial/{tid}?part=3"' in first
    assert 'href="#step-5"' in first and 'href="#step-2"' in first  # cited steps of this part
    assert f'href="/trial/{tid}?part=2#step-25"' in first  # a timeline bar of another part
    last = c.get(f"/trial/{tid}", params={"part": "3"}).text
    assert 'id="step-31"' in last and 'id="step-1"' not in last
    assert f'href="/trial/{tid}#step-5"' in last  # the citation leads back to part 1
    assert 'id="step-25"' in c.get(f"/trial/{tid}", params={"at": "25"}).text
    assert c.get(f"/trial/{tid}", params={"part": "99"}).text.count('class="step ') == 1  # the last part


def test_summary_shows_pass_rates_corrected_by_the_experiments_own_labels(app: Any, store_path: Path) -> None:
    """Human labels that replace judge verdicts give the judge's Se/Sp; the summary corrects by them."""
    c = client(app)
    assert ">corrected<" not in c.get("/experiment/summary", params={"e": "web"}).text  # no labels yet
    with Store.open(store_path) as s:
        judged = s.read("SELECT trial_id, verdict FROM ratings WHERE experiment = 'web' AND criterion = 'correct' "
                        "AND source = 'judge' ORDER BY trial_id")
        yes = [r["trial_id"] for r in judged if r["verdict"] == "YES"][:6]
        no = [r["trial_id"] for r in judged if r["verdict"] == "NO"][:4]
        assert len(yes) == 6 and len(no) == 4
        # reference: 5 of the judge's YES hold, 1 does not; 3 of its NO hold, 1 does not
        for i, t in enumerate(yes):
            s.save_rating(t, "correct", "NO" if i == 0 else "YES", source="human")
        for i, t in enumerate(no):
            s.save_rating(t, "correct", "YES" if i == 0 else "NO", source="human")
        n_yes, n = s.read_one("SELECT count(*) FILTER (verdict = 'YES'), count(*) FILTER (verdict IN ('YES', 'NO')) "
                              "FROM ratings WHERE experiment = 'web' AND criterion = 'correct'")
    se, sp = 5 / 6, 3 / 4
    expected = min(1.0, max(0.0, (n_yes / n + sp - 1) / (se + sp - 1)))
    text = c.get("/experiment/summary", params={"e": "web"}).text
    assert ">corrected<" in text
    row = re.search(r"<tr><td>correct</td>(.*?)</tr>", text, re.S)
    assert row is not None
    assert f"{100 * expected:.1f}%" in row.group(1) and "(10 labels)" in row.group(1)
    other = re.search(r"<tr><td>safe</td>(.*?)</tr>", text, re.S)
    assert other is not None and "no calibration data for this criterion" in other.group(1)


def test_trial_page_shows_steps_whose_metrics_have_only_some_counts(tmp_path: Path) -> None:
    """Every metrics field of a step is optional in ATIF: a step with prompt/completion tokens only renders."""
    from atif.serve import create_app
    from atif.trial import Converted, Trial

    traj = {"schema_version": "ATIF-v1.6", "session_id": "s-partial-metrics",
            "agent": {"name": "a", "version": "1"},
            "steps": [{"step_id": 1, "source": "user", "message": "hi"},
                      {"step_id": 2, "source": "agent", "message": "PARTIAL-METRICS-ANSWER",
                       "metrics": {"prompt_tokens": 1234, "completion_tokens": 5}}]}
    trial = Trial(task_name="t", trial_id="partial-1", trajectory=traj)
    with Store.open(tmp_path / "s.duckdb") as s:
        s.ingest([Converted(trajectory=traj, trial=trial, trial_key="t", source="mem:t")], "e",
                 create_missing_tasks=True)
        trial_id = s.read_one("SELECT trial_id FROM trials")[0]
    r = client(create_app(tmp_path / "s.duckdb")).get(f"/trial/{trial_id}")
    assert r.status_code == 200 and "PARTIAL-METRICS-ANSWER" in r.text and "1,234 in" in r.text
