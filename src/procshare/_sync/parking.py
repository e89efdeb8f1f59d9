"""Waits written once, then run blocking or awaited from asyncio.

A wait is a generator of *parks*: it yields ``(park, timeout)`` where
``park.wait`` blocks (without the GIL) for at most timeout seconds until the
state it watches may have changed, returning False when the time ran out,
and ``park.wake`` passes one wake-up on to another sleeper of the same word.
The generator re-checks its own condition and deadline after every park, so
a park may always return early.  The core's blocking operations (Lock,
Semaphore, Queue) are such generators written in C (``_core.Waiting``, which
is its own park); their blocking calls run the same steps in C without
Python in between.  Condition, Event and Barrier are written here.

``run`` calls each park in the calling thread.  ``run_async`` runs each park
in a worker thread, in slices of ASYNC_SLICE seconds, so the event loop never
blocks; if the awaiting task is cancelled, the CancelledError is thrown into
the generator (whose ``finally`` may still park, for example to re-acquire a
lock) and the worker thread is free again within one slice.  A wake-up that
the abandoned worker receives is passed on (``park.wake``), so it always
reaches a live waiter.  Parks only wait; whatever is taken (a lock, a
semaphore unit) is taken by the generator on the caller's own thread (as the
awaiting task, for an RLock), so ownership is never given to a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Protocol, TypeVar

from .. import _core

T = TypeVar("T")


class Parking(Protocol):
    """How to wait for one word to change, and how to pass a wake-up of it on."""

    def wait(self, timeout: float | None, /) -> bool: ...
    def wake(self) -> object: ...


class Park(NamedTuple):
    """A park made of two callables (Condition, Event and Barrier build them)."""

    wait: Callable[[float | None], bool]
    wake: Callable[[], object]


Waiting = Generator[tuple[Parking, float | None], bool, T]

#: Longest single park of an asyncio wait (bounds how long a cancelled wait holds a thread).
ASYNC_SLICE = 0.05

#: How often a lock's waiter checks whether the holder is still alive (the core's interval).
PROBE = _core.PROBE_NS / 1e9

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def park_word(mapping: _core.Mapping, offset: int, value: int) -> Park:
    """A park on the 32-bit word at offset while it holds value (spinning first, as the
    core does); its wake-ups go to every sleeper (an Event's or a Condition slot's)."""
    return Park(
        lambda timeout: mapping.wait(offset, value, timeout),
        lambda: mapping.wake(offset),
    )


def task_ident() -> int:
    """The running asyncio task of this thread as a number (0 if none): the owner of an
    RLock taken with ``acquire_async`` or ``async with``."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return 0
    return 0 if task is None else id(task)


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
                woke = park.wait(timeout)
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
            worker = _Slice(park)
            try:
                woke = await loop.run_in_executor(
                    _executor(), worker.run, shorter(timeout, ASYNC_SLICE)
                )
            except BaseException as exc:
                worker.abandon()
                park, timeout = waiting.throw(exc)
            else:
                park, timeout = waiting.send(woke)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class _Slice:
    """One park run by a worker thread for a coroutine that may stop awaiting it.

    A wake-up delivered to a worker whose coroutine was cancelled meanwhile is
    passed on to the next sleeper, whichever of the two sides finishes last.
    """

    __slots__ = ("abandoned", "lock", "park", "woke")

    def __init__(self, park: Parking) -> None:
        self.park = park
        self.lock = threading.Lock()
        self.abandoned = self.woke = False

    def run(self, timeout: float | None) -> bool:
        woke = self.park.wait(timeout)
        with self.lock:
            self.woke = woke
            if woke and self.abandoned:
                self.park.wake()
        return woke

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            if self.woke:
                self.park.wake()
