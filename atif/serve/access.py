"""How the web app reaches the store: a short-lived connection per request, one at a time.

DuckDB lets one process write a file, or several read it, never both. Holding the store open
for the life of the server would lock out ``atif upload`` and ``atif evaluate``; so each
request opens the store, reads or writes, and closes it again, and new uploads show up on the
next request. A store busy with another process's write is retried for a moment, then the
request fails with :class:`StoreLockedError` (the page says so). Requests of this server take
turns: DuckDB refuses a read-only and a read-write connection to one file in one process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atif.errors import StoreError, StoreLockedError
from atif.store import Store

__all__ = ["StoreAccess"]

_RETRY_SECONDS = 3.0
_RETRY_PAUSE = 0.05


class StoreAccess:
    """Opens the store named ``target`` for one request at a time."""

    def __init__(self, target: str | os.PathLike[str], *, read_only: bool,
                 data_path: str | os.PathLike[str] | None = None) -> None:
        self.target = str(target)
        self.read_only = read_only
        self.data_path = data_path
        self.lock = threading.RLock()
        """Held while a request uses the store; also makes check-then-write steps atomic in this server."""

    def prepare(self) -> None:
        """Create or migrate the store (unless read-only); check that it opens."""
        with self.lock:
            self._open(self.read_only).close()

    def _open(self, read_only: bool) -> Store:
        deadline = time.monotonic() + _RETRY_SECONDS
        while True:
            try:
                return Store.open(self.target, read_only=read_only, data_path=self.data_path)
            except StoreLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_RETRY_PAUSE)

    def file_version(self) -> str | None:
        """For a store file: a value that changes with every write to it (size and time of it and its WAL).

        None for a store that is not a local file (then the app asks the store itself).
        """
        parts: list[str] = []
        for p in (Path(self.target), Path(self.target + ".wal")):
            try:
                st = p.stat()
            except OSError:
                if not parts:
                    return None
                parts.append("-")
                continue
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        return "f" + ".".join(parts)

    @contextmanager
    def reading(self) -> Iterator[Store]:
        """The store, open for reading for the length of the block."""
        with self.lock:
            store = self._open(True)
            try:
                yield store
            finally:
                store.close()

    @contextmanager
    def writing(self) -> Iterator[Store]:
        """The store, open for writing for the length of the block (refused when serving read-only)."""
        if self.read_only:
            raise StoreError("this server is read-only")
        with self.lock:
            store = self._open(False)
            try:
                yield store
            finally:
                store.close()
