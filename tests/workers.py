"""Process targets for the tests: module-level so that spawn and forkserver can import them."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import procshare


def iadd(obj: Any, n: int) -> None:
    for _ in range(n):
        obj += 1


def array_fetch_add(arr: Any, n: int) -> None:
    for i in range(n):
        arr.fetch_add(i % len(arr), 1)


def locked_increment(obj: Any, n: int) -> None:
    for _ in range(n):
        with obj.get_lock():
            obj.value += 1


def increment_by_name(name: str, n: int) -> None:
    c = procshare.Counter(name=name)
    for _ in range(n):
        c += 1


def pool_task(args: tuple[Any, int]) -> int:
    counter, n = args
    for _ in range(n):
        counter += 1
    return os.getpid()


def hold_lock_forever(lock: Any, ready: Any) -> None:
    lock.acquire()
    ready.set()
    time.sleep(3600)


def send_value(q: Any, obj: Any) -> None:
    q.put(obj)


def kill_self_holding(lock: Any, ready: Any) -> None:
    lock.acquire()
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def count_forever(counter: Any, tally: Any, slot: int, ready: Any) -> None:
    """Increment counter and, right after, this worker's tally slot, until killed."""
    ready.set()
    while True:
        counter += 1
        tally.fetch_add(slot, 1)


def locked_count_forever(value: Any, tally: Any, slot: int, ready: Any) -> None:
    """Like count_forever, but both updates inside the value's lock."""
    ready.set()
    lock = value.get_lock()
    while True:
        with lock:
            value.value += 1
            tally[slot] += 1


def try_acquire_each(locks: list[Any]) -> None:
    """Exit 0 only if none of the (held elsewhere) locks can be taken here."""
    for lock in locks:
        if lock.acquire(timeout=0.05):
            raise SystemExit(f"acquired {lock!r}, which another process holds")
