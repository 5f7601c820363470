"""Judge calls spread over several processes, for when litellm's own CPU caps one.

litellm spends several milliseconds of CPU on each call (building the request, parsing and
pricing the answer, its logging hooks): one process tops out at about a hundred calls a second
however many are in flight. :class:`CallPool` sends calls to ``n - 1`` helper processes and
makes its share itself. Only the calls move: the run's own process keeps the store, the
prompts, the cache and the ratings, so a file store (which one process holds at a time) gains
as much as a team store, and every answer is stored exactly as without the pool.

Each helper runs :func:`atif.judge.client.complete` (tenacity retries and all) in an event loop
of its own, with ``rpm / n`` as its pace. A helper that dies hands its calls in flight back to
the run's process, which makes them itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from atif.judge.pacing import Pacer

__all__ = ["CallPool"]

_READY = "ready"


class _Helper:
    """One helper process (``python -m atif.judge.pool``), its socket, and the calls it has in flight."""

    def __init__(self, rpm: float | None) -> None:
        ours, theirs = socket.socketpair()
        # A fresh interpreter, not multiprocessing's spawn: that would import the caller's own
        # __main__ again, and a script without a main guard would run twice.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "atif.judge.pool", str(theirs.fileno()), repr(rpm or 0.0)],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False
        self.alive = True
        self.inflight: dict[int, tuple[asyncio.Future[Any], dict[str, Any], int]] = {}


class CallPool:
    """``complete(request, retries)`` on whichever of ``n`` processes has the fewest calls in flight."""

    def __init__(self, n: int, rpm: float | None,
                 local: Callable[[dict[str, Any], int, Pacer], Awaitable[tuple[Any, int]]]) -> None:
        self.local = local
        """Makes a call in this process: ``local(request, retries, pacer)`` -> (outcome, retries made)."""
        share = rpm / n if rpm else None
        self.pacer = Pacer(share)
        self.local_inflight = 0
        self.ids = itertools.count()
        self.loop = asyncio.get_running_loop()
        self.helpers = [_Helper(share) for _ in range(n - 1)]
        for helper in self.helpers:
            threading.Thread(target=self._read, args=(helper,), name="atif-judge-pool", daemon=True).start()

    async def complete(self, request: dict[str, Any], retries: int) -> tuple[Any, int]:
        """The call's outcome (``Answer`` or ``Failure``) and the retries it took."""
        ready = [h for h in self.helpers if h.ready and h.alive]
        helper = min(ready, key=lambda h: len(h.inflight), default=None)
        if helper is None or len(helper.inflight) >= self.local_inflight:
            return await self._local(request, retries)
        cid = next(self.ids)
        future: asyncio.Future[Any] = self.loop.create_future()
        helper.inflight[cid] = (future, request, retries)
        try:
            helper.conn.send((cid, request, retries))
        except (OSError, ValueError):
            helper.inflight.pop(cid, None)
            return await self._local(request, retries)
        result: tuple[Any, int] = await future
        return result

    async def _local(self, request: dict[str, Any], retries: int) -> tuple[Any, int]:
        self.local_inflight += 1
        try:
            return await self.local(request, retries, self.pacer)
        finally:
            self.local_inflight -= 1

    def _read(self, helper: _Helper) -> None:
        """The helper's answers, handed to the event loop as they come (a thread per helper)."""
        while True:
            try:
                message = helper.conn.recv()
            except (EOFError, OSError):
                break
            if message == _READY:
                self.loop.call_soon_threadsafe(setattr, helper, "ready", True)
                continue
            self.loop.call_soon_threadsafe(self._settle, helper, message)
        self.loop.call_soon_threadsafe(self._lost, helper)

    def _settle(self, helper: _Helper, message: tuple[int, Any, int]) -> None:
        cid, outcome, retried = message
        entry = helper.inflight.pop(cid, None)
        if entry is not None and not entry[0].done():
            entry[0].set_result((outcome, retried))

    def _lost(self, helper: _Helper) -> None:
        """A helper is gone: its calls in flight are made here instead."""
        helper.alive = False
        for future, request, retries in helper.inflight.values():
            if not future.done():
                task = asyncio.ensure_future(self._local(request, retries))
                task.add_done_callback(functools.partial(_chain, future))
        helper.inflight.clear()

    async def close(self) -> None:
        """Stop the helpers (after their calls in flight) and wait for them."""
        for helper in self.helpers:
            with contextlib.suppress(OSError, ValueError):
                helper.conn.send(None)
        for helper in self.helpers:
            try:
                await asyncio.to_thread(helper.process.wait, 30)
            except subprocess.TimeoutExpired:
                helper.process.kill()
                await asyncio.to_thread(helper.process.wait)
            helper.conn.close()


def _chain(future: asyncio.Future[Any], task: asyncio.Future[Any]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        future.set_result(task.result())


def _serve(fd: int, rpm: float) -> None:
    """A helper process: answer ``(id, request, retries)`` messages until ``None`` or a closed socket."""
    asyncio.run(_serve_calls(Connection(fd), rpm or None))


async def _serve_calls(conn: Any, rpm: float | None) -> None:
    from atif.judge import client

    client.litellm_module()
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message is None:
                return

    threading.Thread(target=read, name="atif-judge-inbox", daemon=True).start()
    pacer = Pacer(rpm)
    conn.send(_READY)

    async def one(cid: int, request: dict[str, Any], retries: int) -> None:
        retried = 0

        def on_retry(kind: str, seconds: float) -> None:
            nonlocal retried
            retried += 1

        outcome = await client.complete(request, retries=retries, on_retry=on_retry, before_attempt=pacer.wait)
        conn.send((cid, outcome, retried))

    tasks: set[asyncio.Task[None]] = set()
    while (message := await inbox.get()) is not None:
        task = asyncio.create_task(one(*message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    conn.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), float(sys.argv[2]))
