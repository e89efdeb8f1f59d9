"""Acquire + release pairs: uncontended in one process, contended by two."""

from __future__ import annotations

import threading
from typing import Any

from ..._sync.lock import Lock, RLock
from ..._sync.semaphore import Semaphore
from ._runner import Case, ctx

BASELINE = "mp.Lock               acquire(); release()"


def _loop_pairs(lock: Any, n: int) -> None:
    acquire, release = lock.acquire, lock.release
    for _ in range(n):
        acquire()
        release()


def cases() -> list[Case]:
    return [
        Case("procshare Lock        acquire(); release()", Lock, _loop_pairs),
        Case(BASELINE, ctx.Lock, _loop_pairs),
        Case("threading.Lock        (one process only)", threading.Lock, _loop_pairs, procs=(1,)),
        Case("procshare RLock       acquire(); release()", RLock, _loop_pairs),
        Case("mp.RLock              acquire(); release()", ctx.RLock, _loop_pairs),
        Case("threading.RLock       (one process only)", threading.RLock, _loop_pairs,
             procs=(1,)),
        Case("procshare Semaphore   acquire(); release()", Semaphore, _loop_pairs),
        Case("mp.Semaphore          acquire(); release()", ctx.Semaphore, _loop_pairs),
    ]  # fmt: skip
