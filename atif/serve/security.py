"""Who may talk to the server, and what pages may do: access token, host check, CSRF, headers.

- **Token.** With a token set (always when bound beyond 127.0.0.1), every request must carry
  it: ``?token=`` once (the server answers with a cookie and a redirect that drops it from the
  address), the ``atif_token`` cookie, or ``Authorization: Bearer``. Anything else gets 401.
- **Host check.** Without a token the server answers only requests addressed to a loopback
  name, so a web page cannot reach it through DNS rebinding.
- **CSRF.** Each browser gets a random ``atif_session`` cookie; write forms carry an HMAC of it
  under the server's secret (:func:`csrf_token`), checked by :func:`check_csrf`. Cross-site
  POSTs (``Origin`` or ``Sec-Fetch-Site`` say so) are refused before that.
- **Headers.** A strict Content-Security-Policy (scripts and styles from this server only, no
  inline script, no network beyond it), ``nosniff``, no referrer beyond this server, no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "CSP",
    "SecurityMiddleware",
    "check_csrf",
    "csrf_token",
    "is_loopback_host",
    "new_token",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
"""The Content-Security-Policy of every response."""

TOKEN_COOKIE = "atif_token"
SESSION_COOKIE = "atif_session"
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    # "no-referrer" would make Chromium send `Origin: null` with our own form posts.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def new_token() -> str:
    """A fresh random access token."""
    return secrets.token_urlsafe(24)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, without port) is this machine's loopback."""
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def csrf_token(secret: bytes, session: str) -> str:
    """The CSRF token of a browser session: an HMAC of its session id under the server's secret."""
    return hmac.new(secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()


def check_csrf(secret: bytes, session: str | None, sent: str | None) -> bool:
    """Whether ``sent`` is the CSRF token of ``session``."""
    if not session or not sent:
        return False
    return hmac.compare_digest(csrf_token(secret, session), sent)


def _host_of(value: str) -> str:
    """``name`` of ``name:port`` or ``[v6]:port``."""
    value = value.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SecurityMiddleware:
    """ASGI middleware: token or loopback host, session cookie, cross-site POST refusal, headers."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        cookies = _cookies(headers.get("cookie", ""))
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        set_cookies: list[str] = []

        if self.token is not None:
            given = [v for k, v in query if k == "token"]
            bearer = headers.get("authorization", "")
            sent = (given[0] if given else None) or (bearer[7:] if bearer.lower().startswith("bearer ") else None) \
                or cookies.get(TOKEN_COOKIE)
            if not sent or not hmac.compare_digest(sent.encode(), self.token.encode()):
                await _plain(send, 401, "atif serve: this server needs its access token; open the URL it printed "
                                        "at start (with ?token=...) or send Authorization: Bearer <token>.")
                return
            if given and scope["method"] in ("GET", "HEAD"):
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                path = (scope.get("raw_path") or scope.get("path", "/").encode()).decode("latin-1")
                location = path + (f"?{rest}" if rest else "")
                await _plain(send, 303, "", location=location,
                             cookies=[f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"])
                return
        elif not is_loopback_host(_host_of(headers.get("host", ""))):
            await _plain(send, 403, "atif serve: requests must be addressed to 127.0.0.1 or localhost "
                                    "(serve with --token to allow other names).")
            return

        if scope["method"] not in ("GET", "HEAD") and _cross_site(headers):
            await _plain(send, 403, "atif serve: cross-site requests are refused.")
            return

        session = cookies.get(SESSION_COOKIE)
        if not session or len(session) > 100:
            session = secrets.token_urlsafe(24)
            set_cookies.append(f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict")
        scope.setdefault("state", {})["session"] = session

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw += _HEADERS
                raw += [(b"set-cookie", c.encode("latin-1")) for c in set_cookies]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_wrapped)


def _cross_site(headers: dict[str, str]) -> bool:
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return origin.split("://", 1)[-1].rstrip("/") != headers.get("host", "")


def _cookies(header: str) -> dict[str, str]:
    """``name=value; ...`` pairs; malformed pieces are passed over (a stricter parser drops the rest)."""
    out: dict[str, str] = {}
    for piece in header.split(";"):
        name, eq, value = piece.strip().partition("=")
        if eq and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


async def _plain(send: Send, status: int, text: str, *, location: str | None = None,
                 cookies: list[str] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *_HEADERS]
    if location is not None:
        headers.append((b"location", location.encode("latin-1")))
    headers += [(b"set-cookie", c.encode("latin-1")) for c in cookies or []]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})
