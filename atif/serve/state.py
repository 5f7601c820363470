"""What one running app holds between requests: store access, secrets, claims, a report cache."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from atif.serve.access import StoreAccess
from atif.serve.review import Claims

__all__ = ["AppState", "url"]

_CACHE_SIZE = 16


def url(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "", False)}
    return path + ("?" + urlencode(kept) if kept else "")


@dataclass
class AppState:
    """Shared by every request of one app."""

    access: StoreAccess
    token: str | None
    reviewer: str
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    claims: Claims = field(default_factory=Claims)
    reviewers: dict[str, str] = field(default_factory=dict)
    """Reviewer name last used by each browser session."""
    _cache: OrderedDict[tuple[Any, ...], Any] = field(default_factory=OrderedDict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def read_only(self) -> bool:
        """Whether the app serves no write route."""
        return self.access.read_only

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered under ``key`` (which should hold the data version) for later requests."""
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = compute()
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return value
