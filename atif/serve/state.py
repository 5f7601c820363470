"""What one running app holds between requests: store access, secrets, claims, a report cache."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atif.serve.access import StoreAccess
from atif.serve.queries import data_version
from atif.serve.review import Claims
from atif.store import Store

__all__ = ["AppState"]

_CACHE_SIZE = 16


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

    def version(self, store: Store | None = None) -> str:
        """The data version: from the store file's size and time when it is a file, else from the store."""
        found = self.access.file_version()
        if found is not None:
            return found
        if store is not None:
            return data_version(store)
        with self.access.reading() as opened:
            return data_version(opened)

    def peek(self, key: tuple[Any, ...]) -> Any:
        """The value remembered under ``key``, or None."""
        with self._cache_lock:
            return self._cache.get(key)

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
