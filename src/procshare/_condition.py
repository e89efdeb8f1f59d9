"""Condition: waiters park on slots in shared memory; notify wakes them in arrival order.

Each waiter claims a slot (state, pid, arrival ticket) while it holds the
lock, releases the lock, and parks on its slot's state word.  notify(n)
marks the n earliest live waiters notified and wakes each one's word, so it
wakes exactly n and never a waiter that has timed out or died.  A waiter
that was killed is found by its pid and its slot freed.  The lock defaults
to an RLock, as multiprocessing's does, and is re-acquired robustly: a
holder that died is replaced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from . import _core, _parking
from ._lock import LOCK_SPACE, Lock, RLock, Synchronized, lock_of, lock_param
from ._parking import Waiting
from ._segment import Kind, Segment
from ._sync_base import SyncObject

T = TypeVar("T")

#: Most processes and threads that can wait on one Condition at the same time.
MAX_WAITERS = 256

_FREE, _WAITING, _NOTIFIED = 0, 1, 2
_N_WAITING, _NEXT_TICKET, _SLOTS = 0, 8, 64  # byte offsets in the condition's layout
SIZE = _SLOTS + 16 * MAX_WAITERS


class Condition(Synchronized, SyncObject):
    """``Condition(lock=None, *, name=None)``, multiprocessing.Condition's semantics.

    ``wait(timeout=None)``, ``wait_for(predicate, timeout=None)``,
    ``notify(n=1)``, ``notify_all()``, ``acquire``/``release``/``with cond:``,
    and the asyncio forms ``async with cond:``, ``await cond.wait_async()``,
    ``await cond.wait_for_async(predicate)``.  wait and notify without
    holding the lock raise AssertionError, as in multiprocessing.
    """

    __slots__ = ("_lock", "_n", "_next", "_offset", "_pids", "_seg", "_states", "_tickets")
    _kind = Kind.CONDITION
    _lock: Lock | RLock
    _n: _core.Cell
    _next: _core.Cell
    _states: _core.CellArray
    _pids: _core.CellArray
    _tickets: _core.CellArray

    def __new__(cls, lock: Lock | RLock | None = None, *, name: str | None = None) -> Any:
        params: dict[str, Any] = {}
        if (lp := lock_param(lock)) is not None:
            params["lock"] = lp
        seg, _ = Segment.open(name, Kind.CONDITION, params, LOCK_SPACE + SIZE, lambda m, o: None)
        return cls._at(seg, seg.data_offset + LOCK_SPACE)

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        (offset,) = args
        return cls._at(Segment.attach(name, Kind.CONDITION), offset)

    @classmethod
    def _at(cls, seg: Segment, offset: int, lock: Lock | RLock | None = None) -> Any:
        """The condition at offset in seg, using lock (by default the one seg records)."""
        lock = lock_of(seg) if lock is None else lock
        self = object.__new__(cls)
        m = seg.mapping
        self._seg, self._offset, self._lock = seg, offset, lock
        self._n = _core.Cell(m, offset + _N_WAITING, "I")
        self._next = _core.Cell(m, offset + _NEXT_TICKET, "Q")
        self._states = _core.CellArray(m, offset + _SLOTS, "I", MAX_WAITERS)
        self._pids = _core.CellArray(m, offset + _SLOTS + 4 * MAX_WAITERS, "I", MAX_WAITERS)
        self._tickets = _core.CellArray(m, offset + _SLOTS + 8 * MAX_WAITERS, "Q", MAX_WAITERS)
        return self

    # -- slots (all changed only while holding the lock) --------------------

    def _state_offset(self, i: int) -> int:
        return self._offset + _SLOTS + 4 * i

    def _claim(self) -> int:
        i = self._states.find(_FREE)
        if i < 0:
            self._reap_dead()
            i = self._states.find(_FREE)
            if i < 0:
                raise RuntimeError(f"more than {MAX_WAITERS} waiters on one Condition")
        self._pids.store(i, os.getpid())
        self._tickets.store(i, self._next.fetch_add(1))
        self._states.store(i, _WAITING)
        self._n.add(1)
        return i

    def _waiting(self) -> list[int]:
        """Slots in the WAITING state, earliest arrival first."""
        found, i = [], self._states.find(_WAITING)
        while i >= 0:
            found.append(i)
            i = self._states.find(_WAITING, i + 1)
        if len(found) > 1:
            found.sort(key=self._tickets.load)
        return found

    def _free(self, i: int) -> None:
        self._states.store(i, _FREE)
        self._n.sub(1)

    def _reap_dead(self) -> None:
        for i, state in enumerate(self._states[:]):
            if state != _FREE and not _core.pid_alive(self._pids.load(i)):
                self._free(i)

    def _check_owned(self, what: str) -> None:
        if not self._lock._is_owned():
            raise AssertionError(f"must acquire() condition before using {what}()")

    # -- waiting ------------------------------------------------------------

    def _wait_steps(self, timeout: float | None) -> Waiting[bool]:
        self._check_owned("wait")
        i = self._claim()
        saved = self._lock._release_save()
        park = partial(_parking.park_word, self._seg.mapping, self._state_offset(i), _WAITING)
        interrupted = True
        try:
            until = _parking.deadline(timeout)
            while self._states.load(i) == _WAITING:
                left = _parking.remaining(until)
                if left == 0:
                    break
                yield park, left
            interrupted = False
        finally:
            yield from self._lock._acquire_steps(None, saved)
            notified: bool = self._states.load(i) == _NOTIFIED
            self._free(i)
            if notified and interrupted:  # cancelled or interrupted: pass the notify on
                self.notify()
        return notified

    def _wait_for_steps(self, predicate: Callable[[], T], timeout: float | None) -> Waiting[T]:
        until = _parking.deadline(timeout)
        result = predicate()
        while not result:
            left = _parking.remaining(until)
            if left == 0:
                break
            yield from self._wait_steps(left)
            result = predicate()
        return result

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (or timeout), re-acquire; True if notified."""
        return _parking.run(self._wait_steps(timeout))

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until predicate() is true (or timeout); return its last value."""
        return _parking.run(self._wait_for_steps(predicate, timeout))

    async def wait_async(self, timeout: float | None = None) -> bool:
        return await _parking.run_async(self._wait_steps(timeout))

    async def wait_for_async(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        return await _parking.run_async(self._wait_for_steps(predicate, timeout))

    # -- notifying ----------------------------------------------------------

    def notify(self, n: int = 1) -> None:
        """Wake the n earliest waiters (fewer if fewer wait)."""
        self._check_owned("notify")
        if n <= 0 or self._n.load() == 0:
            return
        for i in self._waiting():
            if n == 0:
                break
            if not _core.pid_alive(self._pids.load(i)):
                self._free(i)
                continue
            self._states.store(i, _NOTIFIED)
            self._seg.mapping.wake(self._state_offset(i), 1)
            n -= 1

    def notify_all(self) -> None:
        """Wake every waiter."""
        self.notify(MAX_WAITERS)

    def __repr__(self) -> str:
        return f"<procshare.Condition({self._lock!r}, waiters={self._n.load()})>"
