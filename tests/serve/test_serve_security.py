"""Access token, host check, CSRF and read-only mode of the web app."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from serve_builders import client

from atif.serve import create_app, server_info
from atif.serve.security import is_loopback_host
from atif.store import Store


def _form(c: Any, e: str = "mini") -> dict[str, str]:
    """The hidden fields of the review form as the page gives them."""
    text = c.get("/review", params={"e": e}).text
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', text))


@pytest.fixture
def token_app(store_path: Path) -> Any:
    return create_app(store_path, token="s3cret-token")


@pytest.mark.parametrize(("how", "status"), [
    ("none", 401),
    ("wrong query", 401),
    ("wrong bearer", 401),
    ("wrong cookie", 401),
    ("empty query", 401),
    ("bearer", 200),
    ("cookie", 200),
])
def test_token_is_required_on_every_request(token_app: Any, how: str, status: int) -> None:
    c = client(token_app, base_url="http://127.0.0.2:8000")
    headers = {}
    params = {}
    if how == "wrong query":
        params["token"] = "nope"
    elif how == "empty query":
        params["token"] = ""
    elif how == "wrong bearer":
        headers["authorization"] = "Bearer nope"
    elif how == "bearer":
        headers["authorization"] = "Bearer s3cret-token"
    elif how == "wrong cookie":
        c.cookies.set("atif_token", "nope")
    elif how == "cookie":
        c.cookies.set("atif_token", "s3cret-token")
    for path in ("/", "/api/version", "/static/serve.js", "/trial/" + "a" * 64, "/review?e=mini"):
        r = c.get(path, params=params, headers=headers, follow_redirects=False)
        assert r.status_code == status, (how, path)
        if status == 401:
            assert "access token" in r.text and "mini" not in r.text


def test_token_in_the_url_becomes_a_cookie_and_leaves_the_address(token_app: Any) -> None:
    c = client(token_app, base_url="http://127.0.0.2:8000")
    r = c.get("/experiment", params={"e": "mini", "token": "s3cret-token"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/experiment?e=mini"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    assert c.get("/experiment", params={"e": "mini"}).status_code == 200


def test_post_without_token_is_refused(token_app: Any) -> None:
    c = client(token_app, base_url="http://127.0.0.2:8000")
    r = c.post("/review/label", data={"trial_id": "a" * 64, "criterion": "ok", "verdict": "YES"})
    assert r.status_code == 401


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:8000", 200), ("localhost:8000", 200), ("[::1]:8000", 200), ("127.0.0.1", 200),
    ("evil.example:8000", 403), ("attacker.127.0.0.1.nip.io", 403), ("", 403), ("0.0.0.0:8000", 403),
])
def test_without_token_only_loopback_names_are_answered(app: Any, host: str, status: int) -> None:
    r = client(app).get("/", headers={"host": host})
    assert r.status_code == status


@pytest.mark.parametrize(("host", "needs_token"), [
    ("127.0.0.1", False), ("localhost", False), ("::1", False),
    ("127.0.0.2", True), ("0.0.0.0", True), ("192.168.1.10", True), ("::", True),
])
def test_server_info_generates_a_token_beyond_localhost(host: str, needs_token: bool) -> None:
    info = server_info(host, 8000, None)
    assert (info.token is not None) is needs_token and info.token_generated is needs_token
    if needs_token:
        assert f"?token={info.token}" in info.url and len(info.token) >= 24  # type: ignore[arg-type]
    assert server_info(host, 8000, "").token_generated is needs_token  # an empty token is none
    given = server_info(host, 8000, "mine")
    assert given.token == "mine" and not given.token_generated


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.9.9.9", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback_host, ["0.0.0.0", "10.0.0.1", "example.com", "", "127.0.0.1.evil"]))


def _human(store_path: Path, trial_id: str, criterion: str) -> dict[str, Any] | None:
    with Store.open(store_path, read_only=True) as s:
        rows = s.read("SELECT verdict, source, reasoning FROM ratings WHERE trial_id = ? AND criterion = ?",
                      [trial_id, criterion])
    return rows[0] if rows and rows[0]["source"] == "human" else None


@pytest.mark.parametrize("attack", ["no csrf", "wrong csrf", "other session", "cross-site origin",
                                    "cross-site fetch", "null origin"])
def test_label_post_needs_csrf_and_same_origin(app: Any, store_path: Path, attack: str) -> None:
    c = client(app)
    form = _form(c)
    form["verdict"] = "YES"
    headers = {}
    if attack == "no csrf":
        del form["csrf"]
    elif attack == "wrong csrf":
        form["csrf"] = "0" * 64
    elif attack == "other session":
        c = client(app)  # a new browser: its own session, the first one's token
    elif attack == "cross-site origin":
        headers["origin"] = "http://evil.example"
    elif attack == "cross-site fetch":
        headers["sec-fetch-site"] = "cross-site"
    elif attack == "null origin":
        headers["origin"] = "null"
    r = c.post("/review/label", data=form, headers=headers, follow_redirects=False)
    assert r.status_code == 403
    assert _human(store_path, form["trial_id"], form["criterion"]) is None


def test_label_post_with_csrf_is_stored(app: Any, store_path: Path) -> None:
    c = client(app)
    form = _form(c)
    r = c.post("/review/label", data={**form, "verdict": "NO", "note": "misses the file"},
               headers={"origin": "http://127.0.0.1:8000"}, follow_redirects=False)
    assert r.status_code == 303
    assert _human(store_path, form["trial_id"], form["criterion"]) == {
        "verdict": "NO", "source": "human", "reasoning": "misses the file"}


def test_read_only_serves_no_write_route(store_path: Path) -> None:
    app = create_app(store_path, read_only=True)
    c = client(app)
    assert c.get("/").status_code == 200
    assert 'href="/review"' not in c.get("/").text
    assert c.get("/review", params={"e": "mini"}).status_code == 404
    r = c.post("/review/label", data={"trial_id": "a" * 64, "criterion": "ok", "verdict": "YES"})
    assert r.status_code in (404, 405)
    assert _human(store_path, "a" * 64, "ok") is None
    assert all("POST" not in (getattr(route, "methods", None) or ()) for route in app.routes)


def test_read_only_needs_an_existing_store(tmp_path: Path) -> None:
    from atif import NotFoundError

    with pytest.raises(NotFoundError, match="no such store"):
        create_app(tmp_path / "missing.duckdb", read_only=True)
