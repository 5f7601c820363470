"""Spreading per-file work over processes: validation and upload are CPU-bound in Python.

A batch of files is split into chunks handed to a pool of worker processes; results come back
in input order, so output, issue order and stored ids do not depend on the number of workers.
A pool starts only when it can pay for itself: more than one usable core and enough items.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future
# multiprocessing and concurrent.futures are imported by the pool itself: a run in one process
# (small batches, --workers 1) starts without them.

__all__ = ["ENV_WORKERS", "MIN_ITEMS_PER_WORKER", "OrderedPool", "map_ordered", "usable_cores", "worker_count"]

T = TypeVar("T")
R = TypeVar("R")

ENV_WORKERS = "ATIF_WORKERS"
"""Environment variable giving the default number of worker processes (``--workers`` overrides it)."""

MIN_ITEMS_PER_WORKER = 100
"""Below this many items per worker, starting processes costs more than it saves."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(n_items: int | None, requested: int | None = None) -> int:
    """How many worker processes to use for ``n_items`` items (1 means: stay in this process).

    ``requested`` (``--workers``; else ``$ATIF_WORKERS``; else automatic) of 0 or None is
    automatic: one per usable core, at most one per :data:`MIN_ITEMS_PER_WORKER` items, at most 8.
    """
    if requested is None:
        raw = os.environ.get(ENV_WORKERS, "").strip()
        requested = int(raw) if raw.isdigit() else 0
    if requested >= 1:
        return requested
    cores = min(usable_cores(), 8)
    if n_items is None:
        return cores
    return max(1, min(cores, n_items // MIN_ITEMS_PER_WORKER))


def _init_worker() -> None:
    # The parent's objects are shared copy-on-write; the cycle collector would touch (and copy)
    # them all, and what a worker makes dies by reference counting.
    gc.freeze()
    gc.disable()


def _run_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [fn(x) for x in chunk]


class OrderedPool:
    """Worker processes that map a function over items chunk by chunk, results in input order.

    ``start_method`` ``fork`` (the default where it exists) starts a worker in milliseconds with
    every module already imported; a process that holds threads or native handles (an open
    DuckDB store) uses ``forkserver``, whose workers fork from a clean server that imported
    ``preload`` once. ``start()`` starts the workers now rather than at the first chunk.
    """

    def __init__(self, workers: int, *, start_method: str | None = None, preload: Sequence[str] = ()) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        method = start_method if start_method in methods else ("fork" if "fork" in methods else None)
        ctx = multiprocessing.get_context(method)
        if method == "forkserver" and preload:
            ctx.set_forkserver_preload(list(preload))
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker now (and wait until they run)."""
        for f in [self.pool.submit(_ready) for _ in range(self.workers)]:
            f.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, chunk_size: int = 16, ahead: int = 4) -> Iterator[R]:
        """``fn`` (a module-level function) over ``items``, in order; at most ``ahead`` chunks per
        worker in flight, so memory is bounded by the chunk size, not by the number of items."""
        pending: list[Future[list[R]]] = []
        chunk: list[T] = []
        for x in items:
            chunk.append(x)
            if len(chunk) >= chunk_size:
                pending.append(self.pool.submit(_run_chunk, fn, chunk))
                chunk = []
                while len(pending) >= self.workers * ahead:
                    yield from pending.pop(0).result()
        if chunk:
            pending.append(self.pool.submit(_run_chunk, fn, chunk))
        while pending:
            yield from pending.pop(0).result()


def _ready() -> bool:
    return True


def map_ordered(
    fn: Callable[[T], R], items: Iterable[T], workers: int, *, chunk_size: int = 16, ahead: int = 4
) -> Iterator[R]:
    """``fn`` over ``items`` in ``workers`` forked processes (see :class:`OrderedPool`), in input order.

    With ``workers`` <= 1 it runs here.
    """
    if workers <= 1:
        for x in items:
            yield fn(x)
        return
    with OrderedPool(workers) as pool:
        yield from pool.map(fn, items, chunk_size=chunk_size, ahead=ahead)
