"""How a run spaces its calls to the model and groups its store reads and writes.

:class:`Pacer` keeps to a requests-per-minute limit. :class:`Batcher` turns many small store
requests into one call each: DuckDB pays per statement, not per row, so the judge's reads and
writes go in batches, each one call for everything that queued up while the previous batch
ran (no request waits for more to arrive, unless the batcher is told to ``linger``). The
``*_batch`` functions are those calls.
:class:`StoreThread` runs them off the event loop on one thread, writes first: an answer is
committed as soon as the store is free, never behind reads queued before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from atif.errors import NotFoundError

if TYPE_CHECKING:
    from atif.store import Store

__all__ = ["READ", "WRITE", "Batcher", "Pacer", "StoreThread", "cache_batch", "trial_batch", "write_batch"]

T = TypeVar("T")

WRITE = 0
"""Priority of store writes: they go first."""
READ = 1
"""Priority of store reads."""
_STOP = 2


class Pacer:
    """At most ``rpm`` requests per minute, evenly spaced.

    ``clock`` and ``sleep`` default to the running event loop's clock and :func:`asyncio.sleep`;
    a test passes its own to see the slots given without waiting for them.
    """

    def __init__(self, rpm: float | None, *, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next = 0.0
        self.clock = clock
        self.sleep = sleep or asyncio.sleep

    async def wait(self) -> None:
        """Return when the next request may leave."""
        if not self.interval:
            return
        now = self.clock() if self.clock is not None else asyncio.get_running_loop().time()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await self.sleep(slot - now)


class StoreThread:
    """One thread for every store call of a run, taking the most urgent queued call first."""

    def __init__(self) -> None:
        self.jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self.order = itertools.count()
        self.thread = threading.Thread(target=self._loop, name="atif-store", daemon=True)
        self.thread.start()

    async def call(self, priority: int, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the store thread; among queued calls, lower ``priority`` runs first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.jobs.put((priority, next(self.order), (fn, loop, future)))
        return await future

    def close(self) -> None:
        """Finish the queued calls, then stop the thread."""
        self.jobs.put((_STOP, next(self.order), None))
        self.thread.join()

    def _loop(self) -> None:
        while True:
            _, _, job = self.jobs.get()
            if job is None:
                return
            fn, loop, future = job
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """Runs ``call([args...])`` for whatever requests queued up meanwhile; each request gets its own result."""

    def __init__(self, call: Callable[[list[Any]], Awaitable[list[Any]]], limit: int = 256,
                 linger: float = 0.0) -> None:
        self.call = call
        self.limit = limit
        self.linger = linger
        """Seconds a batch may wait for more requests after its first, less the last call's duration
        (cut short by :meth:`close`)."""
        self.last_call = 0.0
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closing = asyncio.Event()
        self.task = asyncio.create_task(self._loop())

    def submit(self, arg: Any) -> asyncio.Future[Any]:
        """Queue one request; the future holds its result (or its exception)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((arg, future))
        return future

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self.closing.set()
        self.queue.put_nowait(None)
        await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self) -> None:
        stop = False
        while not stop:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            # Gather for what is left of ``linger`` once the last call's own time is counted: a slow
            # store (a busy machine) batches by itself, and an answer still waits at most about
            # ``linger`` plus one call before it is committed.
            wait = self.linger - self.last_call
            if wait > 0 and not self.closing.is_set() and self.queue.qsize() < self.limit - 1:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), wait)
            while len(batch) < self.limit and not self.queue.empty():
                nxt = self.queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            started = time.monotonic()
            try:
                results = await self.call([arg for arg, _ in batch])
            except Exception as exc:  # noqa: BLE001
                results = [exc] * len(batch)
            self.last_call = time.monotonic() - started
            for (_, future), result in zip(batch, results, strict=False):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def write_batch(store: Store, writes: Sequence[tuple[dict[str, Any], dict[str, Any] | None]]) -> list[bool]:
    """Store ratings (and their cache entries) in one transaction; True for each rating kept.

    The rules of ``Store.save_ratings``: a rating never replaces one of a higher source; a pair
    taken from the pending list (``replace`` False) is stored only if no rating arrived since,
    and a pair taken up again (``replace`` True) may replace a judge rating. A cache entry
    replaces an older one under the same key only for a rating that replaces (a rejudge);
    otherwise the first answer stays (the key is the prompt, so any later answer is the same
    question asked again).
    """
    cache = [{**c, "replace": r["replace"]} for r, c in writes if c is not None]
    return store.save_ratings([r for r, _ in writes], cache=cache, skip_unknown=True)


def cache_batch(store: Store, keys: Sequence[str]) -> list[dict[str, Any] | None]:
    """The judge cache entries of ``keys`` (None where there is none), in one query."""
    found = store.cache_get_many(keys)
    return [found.get(k) for k in keys]


def trial_batch(store: Store, trial_ids: Sequence[str]) -> list[Any]:
    """Trial records as ``Store.trial`` gives them (without ratings), or NotFoundError, in one query."""
    found = store.trials_by_id(trial_ids)
    return [found.get(tid) or NotFoundError(f"no trial {tid!r}") for tid in trial_ids]
