"""Helpers of the web app tests."""

from __future__ import annotations

from typing import Any


def client(app: Any, **kw: Any) -> Any:
    """A test client addressed to 127.0.0.1 (the host check refuses other names without a token)."""
    from starlette.testclient import TestClient

    kw.setdefault("base_url", "http://127.0.0.1:8000")
    return TestClient(app, **kw)
