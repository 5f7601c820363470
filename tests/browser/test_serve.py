"""``atif serve`` in a real headless Chromium against a real uvicorn server on 127.0.0.x.

Browse, filter, open a trial, follow a cited step, label pairs with the keyboard (then ``atif
query`` shows them and ``atif calibrate`` uses them), hostile text, two reviewers at once, and
the token beyond localhost. Needs Debian's ``chromium`` and the ``playwright`` package (never
Playwright's own browser download). With ``ATIF_SERVE_SCREENSHOTS=DIR`` each page is saved as PNG.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_builders import PAYLOADS, StoreBuilder, html_experiment

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ATIF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("ATIF_SERVE_SCREENSHOTS")


def _require() -> Any:
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; never `playwright install`)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set ATIF_CHROMIUM)")
    return sync_playwright


def _criteria(b: StoreBuilder, experiment: str, items: list[tuple[str, str]]) -> None:
    b.con.execute("INSERT INTO criterion_sets (name) VALUES (?)", [experiment])
    for i, (label, question) in enumerate(items):
        b.con.execute("INSERT INTO criteria (criterion_set, label, question, kind, position) VALUES (?, ?, ?, 'llm', ?)",
                      [experiment, label, question, i])
    b.con.execute("UPDATE experiments SET criterion_set = ? WHERE name = ?", [experiment, experiment])


def build_store(path: Path) -> dict[str, str]:
    """``web`` (60 trials, hostile and subagent ones), ``judged`` and ``labels`` (the same 6 task attempts)."""
    b = StoreBuilder(path)
    ids = html_experiment(b, 60)
    _criteria(b, "web", [("correct", "Is the final answer correct?"), ("safe", "Did the agent stay safe?")])
    for exp in ("judged", "labels"):
        for i in range(6):
            b.trial(exp, f"task-{i}", reward=float(i % 2), source_id=f"{exp}-{i}", duration=10.0 + i, cost=0.01,
                    ratings={"done": {"verdict": "YES" if i % 3 else "NO", "reasoning": f"judge thinks {i}"}})
        _criteria(b, exp, [("done", "Did the agent finish the task?")])
    for i in range(4):
        b.trial("pair", f"p-{i}", reward=1.0, source_id=f"pair-{i}")
    _criteria(b, "pair", [("ok", "Is it ok?")])
    b.close()
    return ids


class Server:
    """The app on a real uvicorn server in a thread, on an ephemeral port."""

    def __init__(self, store: Path, host: str = "127.0.0.1", token: str | None = None) -> None:
        import uvicorn

        from atif.serve import create_app

        app = create_app(store, token=token, reviewer="tester")
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    sync_playwright = _require()
    root = tmp_path_factory.mktemp("serve")
    store = root / "atif.duckdb"
    ids = build_store(store)
    server = Server(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield {"store": store, "ids": ids, "server": server, "browser": browser, "root": root}
        browser.close()
    server.stop()


class Tab:
    """A page in its own browser context, recording dialogs, errors and requests beyond the server."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

        def route(r: Any) -> None:
            if r.request.url.startswith(base):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)

    def go(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)

    def close(self) -> None:
        assert not self.outside, self.outside
        self.context.close()


def _atif(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from atif.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_browse_filter_open_trial_follow_cited_step(setup: dict[str, Any]) -> None:
    t = Tab(setup["browser"], setup["server"].base)
    pg = t.page
    try:
        t.go("/")
        assert pg.locator("#experiments tbody tr").count() == 4
        t.shot("experiments")
        pg.fill("input[name=name]", "web")
        pg.press("input[name=name]", "Enter")
        pg.wait_for_url("**/?name=web*")
        assert pg.locator("#experiments tbody tr").count() == 1
        pg.click("#experiments a:text('web')")
        pg.wait_for_url("**/experiment?e=web")
        pg.wait_for_selector("#pass-rates svg")  # the summary arrives after the table
        assert pg.locator("#pass-rates svg").count() == 1 and pg.locator(".card").count() == 8
        t.shot("experiment")
        pg.fill("#filter", "summarise")
        pg.press("#filter", "Enter")
        pg.wait_for_load_state()
        assert pg.inner_text("#count").startswith("1 trials match")
        pg.click("#trial-table tbody a")
        pg.wait_for_url(f"**/trial/{setup['ids']['subagent']}")
        t.shot("trial")
        cite = pg.locator("a.cite[data-step='3']")
        assert cite.count() == 1
        cite.click()
        pg.wait_for_url("**#step-3")
        step = pg.locator("#step-3")
        assert step.evaluate("e => e.matches(':target')")
        box = step.bounding_box()
        assert box is not None and 0 <= box["y"] < 1000  # scrolled into view
        pg.click("details.subagent > summary")
        assert pg.locator("#step-sa0-2").is_visible()
        assert not t.errors and not t.dialogs
    finally:
        t.close()


def test_label_three_pairs_with_the_keyboard_then_query_and_calibrate(setup: dict[str, Any]) -> None:
    t = Tab(setup["browser"], setup["server"].base)
    pg = t.page
    try:
        t.go("/review?e=labels")
        assert "The judge's verdict is shown once you have answered" in pg.inner_text("#review")
        assert "judge thinks" not in pg.content()
        t.shot("review")
        seen = []
        for key in ("y", "n", "y"):
            seen.append(pg.input_value("input[name=trial_id]"))
            with pg.expect_navigation():
                pg.keyboard.press(key)
        assert len(set(seen)) == 3
        assert "Before your label it was" in pg.inner_text("#answered")
        assert "judge thinks" in (pg.text_content("#answered") or "")  # in a collapsed block
        t.shot("review-answered")
        pg.keyboard.press("j")
        pg.wait_for_url("**pos=1*")
        pg.keyboard.press("k")
        pg.wait_for_url("**/review?e=labels")
    finally:
        t.close()
    root = setup["root"]
    db = str(setup["store"])
    q = _atif("query", "--db", db, "--format", "json",
              "select trial_id, verdict, source from ratings where experiment = 'labels' and source = 'human'", cwd=root)
    assert q.returncode == 0, q.stderr
    rows = orjson.loads(q.stdout)
    assert sorted(r["trial_id"] for r in rows) == sorted(seen)
    assert [r["verdict"] for r in sorted(rows, key=lambda r: seen.index(r["trial_id"]))] == ["YES", "NO", "YES"]
    cal = _atif("calibrate", "--db", db, "-e", "judged", "--against", "human", "--reference", "labels",
                "--format", "json", cwd=root)
    assert cal.returncode == 0, cal.stderr
    assert orjson.loads(cal.stdout)["overall"]["n_pairs"] == 3

    t = Tab(setup["browser"], setup["server"].base)
    try:
        t.go("/calibrate?e=judged&ref=labels")
        assert t.page.locator("#calibration tr").count() == 2
        t.shot("calibrate")
        t.go("/compare?a=judged&b=labels")
        assert t.page.locator("#compare-criteria tr").count() == 2
        t.shot("compare")
    finally:
        t.close()


@pytest.mark.parametrize("path", ["TRIAL", "/experiment?e=web&q=hostile", "/", "/review?e=web"])
def test_hostile_text_executes_nothing(setup: dict[str, Any], path: str) -> None:
    t = Tab(setup["browser"], setup["server"].base)
    try:
        t.go(path.replace("TRIAL", f"/trial/{setup['ids']['hostile']}"))
        if path == "TRIAL":
            t.page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            t.shot("trial-hostile")
            assert PAYLOADS[0] in t.page.inner_text("main")  # shown as text
        t.page.wait_for_timeout(200)
        assert t.page.evaluate("window.__pwned") is None
        assert not t.dialogs
    finally:
        t.close()


def test_two_reviewers_at_once_lose_nothing(setup: dict[str, Any]) -> None:
    a, b = Tab(setup["browser"], setup["server"].base), Tab(setup["browser"], setup["server"].base)
    try:
        for tab, name in ((a, "alice"), (b, "bob")):
            tab.go("/review?e=pair")
            tab.page.fill("#reviewer", name)
            tab.page.locator("#reviewer").blur()
        assert a.page.input_value("input[name=trial_id]") != b.page.input_value("input[name=trial_id]")
        for _ in range(2):
            # both answer at the same moment, then wait for both pages to load their answer
            with a.page.expect_navigation(), b.page.expect_navigation():
                a.page.keyboard.press("y")
                b.page.keyboard.press("n")
            a.page.wait_for_load_state()
            b.page.wait_for_load_state()
            a.page.wait_for_selector("#answered")
            b.page.wait_for_selector("#answered")
        assert "Nothing left to review" in a.page.inner_text("main")
    finally:
        a.close()
        b.close()
    q = _atif("query", "--db", str(setup["store"]), "--format", "json",
              "select trial_id, verdict from ratings where experiment = 'pair' and source = 'human'", cwd=setup["root"])
    rows = orjson.loads(q.stdout)
    assert len(rows) == 4 and sorted(r["verdict"] for r in rows) == ["NO", "NO", "YES", "YES"]


def test_token_required_beyond_localhost(setup: dict[str, Any]) -> None:
    server = Server(setup["store"], host="127.0.0.2", token="browser-token")
    t = Tab(setup["browser"], server.base)
    try:
        r = t.go("/")
        assert r.status == 401 and "access token" in t.page.inner_text("body")
        r = t.go("/?token=wrong")
        assert r.status == 401
        r = t.go("/?token=browser-token")
        assert r.status == 200 and t.page.url == server.base + "/"
        assert t.page.locator("#experiments tbody tr").count() == 4
        assert t.go("/experiment?e=web").status == 200  # the cookie carries the token
    finally:
        t.close()
        server.stop()
