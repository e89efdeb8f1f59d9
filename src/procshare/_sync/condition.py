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
from typing import Any, TypeVar

from .. import _core
from .._errors import CorruptSegmentError
from .._shm.names import Kind
from .._shm.segment import Segment, check_attach
from . import parking as _parking
from .base import SyncObject
from .lock import LOCK_SPACE, Lock, RLock, Synchronized, lock_of, lock_param
from .parking import Waiting

T = TypeVar("T")

#: Most processes and threads that can wait on one Condition at once, unless
#: ``max_waiters=`` says otherwise at creation (16 bytes of segment each).
MAX_WAITERS = 4096

_FREE, _WAITING, _NOTIFIED = 0, 1, 2
# byte offsets in the condition's layout: waiters, 1 + the highest slot ever claimed (scans
# stop there), the next arrival ticket, then the slots' states, pids and tickets
_N_WAITING, _HIGH, _NEXT_TICKET, _SLOTS = 0, 4, 8, 64


def size(waiters: int) -> int:
    """Bytes of a condition's layout with room for waiters."""
    return _SLOTS + 16 * waiters


class Condition(Synchronized, SyncObject):
    """``Condition(lock=None, *, name=None, mode=0o600, max_waiters=4096)``,
    multiprocessing.Condition's semantics.

    ``wait(timeout=None)``, ``wait_for(predicate, timeout=None)``,
    ``notify(n=1)``, ``notify_all()``, ``acquire``/``release``/``with cond:``,
    and the asyncio forms ``async with cond:``, ``await cond.wait_async()``,
    ``await cond.wait_for_async(predicate)``.  wait and notify without
    holding the lock raise AssertionError, as in multiprocessing.  At most
    ``max_waiters`` processes and threads wait at once (RuntimeError beyond).
    """

    __slots__ = ("_high", "_lock", "_n", "_next", "_offset", "_parks", "_pids", "_seg",
                 "_states", "_tickets", "_waiters")  # fmt: skip
    _kind = Kind.CONDITION
    _lock: Lock | RLock
    _n: _core.Cell
    _high: _core.Cell
    _next: _core.Cell
    _states: _core.CellArray
    _pids: _core.CellArray
    _tickets: _core.CellArray
    _waiters: int
    _parks: dict[int, _parking.Park]  # by slot, made on first use

    def __new__(
        cls,
        lock: Lock | RLock | None = None,
        *,
        name: str | None = None,
        mode: int = 0o600,
        max_waiters: int = MAX_WAITERS,
    ) -> Any:
        if not isinstance(max_waiters, int) or isinstance(max_waiters, bool):
            raise TypeError(f"max_waiters must be an int, not {type(max_waiters).__name__}")
        if not 1 <= max_waiters <= 1 << 20:
            raise ValueError(f"max_waiters must be 1 to {1 << 20}, not {max_waiters}")
        params: dict[str, Any] = {"waiters": max_waiters}
        if (lp := lock_param(lock)) is not None:
            params["lock"] = lp
        seg, created = Segment.open(
            name, Kind.CONDITION, params, LOCK_SPACE + size(max_waiters), _zeroed, mode=mode
        )
        if not created:
            check_attach(seg, params, {"waiters": MAX_WAITERS})
        return cls._at(seg, cls._own_offset(seg))

    @classmethod
    def _own_offset(cls, seg: Segment) -> int:
        return seg.data_offset + LOCK_SPACE  # behind its lock

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        (offset,) = args
        return cls._at(Segment.attach(name, Kind.CONDITION), offset)

    @classmethod
    def _at(cls, seg: Segment, offset: int, lock: Lock | RLock | None = None) -> Any:
        """The condition at offset in seg, using lock (by default the one seg records);
        room for seg.params["waiters"] waiters."""
        waiters = seg.params.get("waiters")
        if not isinstance(waiters, int) or not 1 <= waiters <= 1 << 20:
            raise CorruptSegmentError(f"segment {seg.name!r} has a damaged header (waiters)")
        lock = lock_of(seg) if lock is None else lock
        self = object.__new__(cls)
        m = seg.mapping
        self._seg, self._offset, self._lock, self._waiters = seg, offset, lock, waiters
        self._parks = {}
        self._n = _core.Cell(m, offset + _N_WAITING, "I")
        self._high = _core.Cell(m, offset + _HIGH, "I")
        self._next = _core.Cell(m, offset + _NEXT_TICKET, "Q")
        self._states = _core.CellArray(m, offset + _SLOTS, "I", waiters)
        self._pids = _core.CellArray(m, offset + _SLOTS + 4 * waiters, "I", waiters)
        self._tickets = _core.CellArray(m, offset + _SLOTS + 8 * waiters, "Q", waiters)
        return self

    # -- slots: claimed holding the lock; every later change of state is one atomic
    # -- step (notify: WAITING -> NOTIFIED, leave: any -> FREE), so a waiter can give
    # -- its slot back on every way out, holding the lock or not.

    def _state_offset(self, i: int) -> int:
        return self._offset + _SLOTS + 4 * i

    def _claim(self) -> int:
        i = self._states.find(_FREE)
        if i < 0:
            self._reap_dead()
            i = self._states.find(_FREE)
            if i < 0:
                raise RuntimeError(
                    f"more than {self._waiters} waiters on one Condition "
                    "(create it with a larger max_waiters=)"
                )
        self._pids.store(i, os.getpid())
        self._tickets.store(i, self._next.fetch_add(1))
        if i >= self._high.load():
            self._high.store(i + 1)
        self._states.store(i, _WAITING)
        self._n.add(1)
        return i

    def _waiting(self) -> list[int]:
        """Slots in the WAITING state, earliest arrival first."""
        high = self._high.load()
        found, i = [], self._states.find(_WAITING, 0, high)
        while i >= 0:
            found.append(i)
            i = self._states.find(_WAITING, i + 1, high)
        if len(found) > 1:
            found.sort(key=self._tickets.load)
        return found

    def _leave(self, i: int) -> bool:
        """Free slot i; whether it had been notified."""
        old = self._states.exchange(i, _FREE)
        if old != _FREE:
            self._n.sub(1)
        return bool(old == _NOTIFIED)

    def _reap_dead(self) -> None:
        for i, state in enumerate(self._states[:]):
            if state != _FREE and not _core.pid_alive(self._pids.load(i)):
                self._leave(i)

    def _check_owned(self, what: str) -> None:
        if not self._lock._is_owned():
            raise AssertionError(f"must acquire() condition before using {what}()")

    # -- waiting ------------------------------------------------------------

    def _wait_steps(self, timeout: float | None) -> Waiting[bool]:
        self._check_owned("wait")
        i = self._claim()
        saved = self._lock._release_save()
        park = self._parks.get(i)
        if park is None:
            park = self._parks[i] = _parking.park_word(
                self._seg.mapping, self._state_offset(i), _WAITING
            )
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
            try:
                yield from self._lock._acquire_steps(None, saved)
            finally:
                # On every way out, the lock re-taken or not: give the slot back, and
                # pass on a notification this waiter cannot use.
                notified = self._leave(i)
                if notified and interrupted:
                    self._notify(1)
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
        self._notify(n)

    def _notify(self, n: int) -> None:
        if n <= 0 or self._n.load() == 0:
            return
        for i in self._waiting():
            if n == 0:
                break
            if not _core.pid_alive(self._pids.load(i)):
                if self._states.compare_exchange(i, _WAITING, _FREE):
                    self._n.sub(1)
                continue
            if self._states.compare_exchange(i, _WAITING, _NOTIFIED):
                self._seg.mapping.wake(self._state_offset(i))
                n -= 1

    def notify_all(self) -> None:
        """Wake every waiter."""
        self.notify(self._waiters)

    def __repr__(self) -> str:
        return f"<procshare.Condition({self._lock!r}, waiters={self._n.load()})>"


def _zeroed(mapping: _core.Mapping, offset: int) -> None:
    """New segments are zero-filled: no waiters, every slot free."""
