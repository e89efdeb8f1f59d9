"""Blocking waits written once, then run blocking or awaited from asyncio.

A wait is a generator of *parks*: it yields ``(park, timeout)`` where park is
a function that blocks (without the GIL) for at most timeout seconds until
the state it watches may have changed, returning False when the time ran
out.  The generator re-checks its own condition and deadline after every
park, so a park may always return early.

``run`` calls each park in the calling thread.  ``run_async`` runs each park
in a worker thread, in slices of ASYNC_SLICE seconds, so the event loop never
blocks; if the awaiting task is cancelled, the CancelledError is thrown into
the generator (whose ``finally`` may still park, for example to re-acquire a
lock) and the worker thread is free again within one slice.  Parks only wait;
whatever is taken (a lock, a semaphore unit) is taken by the generator on the
caller's own thread, so ownership is never given to a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from . import _core

T = TypeVar("T")

Park = Callable[[float | None], bool]
Waiting = Generator[tuple[Park, float | None], bool, T]

#: Longest single park of an asyncio wait (bounds how long a cancelled wait holds a thread).
ASYNC_SLICE = 0.05

#: How often a waiter checks whether the process it depends on is still alive.
PROBE = 0.02

#: Seconds a waiter spins on a word before sleeping: a waker on another core is often that close.
SPIN = 20e-6

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def park_word(mapping: _core.Mapping, offset: int, value: int, timeout: float | None) -> bool:
    """A park on the 32-bit word at offset while it holds value (spinning SPIN first)."""
    return mapping.wait(offset, value, timeout, SPIN)


def deadline(timeout: float | None) -> float | None:
    """The monotonic time at which a wait of timeout seconds ends (None: never)."""
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def remaining(when: float | None) -> float | None:
    """Seconds left until when (None: no limit), never negative."""
    return None if when is None else max(0.0, when - time.monotonic())


def shorter(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def run(waiting: Waiting[T]) -> T:
    """Drive a wait in this thread, blocking."""
    try:
        park, timeout = next(waiting)
        while True:
            try:
                woke = park(timeout)
            except BaseException as exc:  # KeyboardInterrupt: let the wait clean up
                park, timeout = waiting.throw(exc)
            else:
                park, timeout = waiting.send(woke)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _executor() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="procshare-park")
        _pool_pid = os.getpid()
    return _pool


async def run_async(waiting: Waiting[T]) -> T:
    """Drive a wait from a coroutine without blocking the event loop; honours cancellation."""
    loop = asyncio.get_running_loop()
    try:
        park, timeout = next(waiting)
        while True:
            try:
                woke = await loop.run_in_executor(_executor(), park, shorter(timeout, ASYNC_SLICE))
            except BaseException as exc:
                park, timeout = waiting.throw(exc)
            else:
                park, timeout = waiting.send(woke)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
