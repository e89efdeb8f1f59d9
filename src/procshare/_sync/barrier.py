"""Barrier: parties processes (or threads) wait until all have arrived.

The algorithm is threading.Barrier's (filling, draining, resetting, broken),
with its state, count and Condition in shared memory.  Each counted waiter
also records its pid in a member table; waiters check the table every
PROBE seconds, so a member killed while waiting breaks the barrier for the
others (BrokenBarrierError) instead of leaving them waiting forever, and a
member killed after release no longer holds up the next round.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from threading import BrokenBarrierError
from typing import Any

from .. import _core
from .._errors import CorruptSegmentError, ProcshareError
from .._shm.names import Kind
from .._shm.segment import Segment, check_attach
from . import parking as _parking
from .base import SyncObject
from .condition import MAX_WAITERS, Condition
from .condition import size as condition_size
from .lock import LOCK_SPACE, Lock
from .parking import Waiting

__all__ = ["Barrier", "BrokenBarrierError"]

_FILLING, _DRAINING, _RESETTING, _BROKEN = 0, 1, -1, -2
_STATES = (_FILLING, _DRAINING, _RESETTING, _BROKEN)

#: How often waiters check that every counted member is alive.
PROBE = 0.1

_HELD = -1  # params["action"]: the action lives with the handles, not in the segment


class Barrier(SyncObject):
    """``Barrier(parties, action=None, timeout=None, *, name=None)``.

    multiprocessing.Barrier's semantics: ``wait(timeout=None)`` returns an
    index from 0 to parties-1, one waiter runs ``action`` when all have
    arrived, and ``reset()``, ``abort()``, ``broken``, ``n_waiting``,
    ``parties`` work as in threading.  ``await barrier.wait_async()`` waits
    without blocking an event loop.

    An action that pickles on its own (a function, by reference) is stored in
    the segment, so processes that attach by name run the same one.  Any
    other action travels with the handle as multiprocessing passes objects to
    children (inherited by fork; pickled while spawning, where its
    multiprocessing locks and values may travel too); a process attaching
    such a barrier by name passes its own ``action=``.
    """

    __slots__ = ("_action", "_cond", "_count", "_members", "_offset", "_parties", "_seg",
                 "_state", "_timeout")  # fmt: skip
    _kind = Kind.BARRIER
    _action: Callable[[], object] | None
    _cond: Condition
    _count: _core.Cell
    _members: _core.CellArray
    _parties: int
    _state: _core.Cell
    _timeout: float | None

    def __new__(
        cls,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
        mode: int = 0o600,
    ) -> Any:
        if not isinstance(parties, int) or isinstance(parties, bool):
            raise TypeError(f"parties must be an int, not {type(parties).__name__}")
        if parties < 1:
            raise ValueError(f"parties must be >= 1, not {parties}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise ValueError(f"timeout must be a non-negative number or None, not {timeout!r}")
        if action is not None and not callable(action):
            raise TypeError("action must be callable or None")
        blob = b""
        if action is not None:
            try:
                blob = pickle.dumps(action)
            except Exception:  # holds multiprocessing objects, or is local: keep it with handles
                blob = b""
        stored = len(blob) if blob else (_HELD if action is not None else 0)
        waiters = max(MAX_WAITERS, 2 * parties)
        params = {"parties": parties, "timeout": timeout, "action": stored, "waiters": waiters}
        layout = _layout(parties, len(blob), waiters)

        def init(mapping: _core.Mapping, offset: int) -> None:
            start = offset + layout["action"]
            memoryview(mapping)[start : start + len(blob)] = blob

        seg, created = Segment.open(name, Kind.BARRIER, params, layout["size"], init, mode=mode)
        if not created:
            check_attach(seg, {"parties": parties, "timeout": timeout}, {"timeout": None})
        return cls._at(seg, seg.data_offset, action)

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        seg = Segment.attach(name, Kind.BARRIER)
        return cls._at(seg, seg.data_offset, *args)

    def _handle_args(self) -> tuple[Any, ...]:
        return (self._action,) if self._seg.params["action"] == _HELD else ()

    @classmethod
    def _at(cls, seg: Segment, offset: int, action: Any = None) -> Any:
        """The barrier in seg; action is this handle's own (None: the stored one)."""
        self = object.__new__(cls)
        m, p = seg.mapping, seg.params
        parties, stored, waiters = p.get("parties"), p.get("action"), p.get("waiters")
        if not (isinstance(parties, int) and isinstance(stored, int) and isinstance(waiters, int)):
            raise CorruptSegmentError(f"segment {seg.name!r} has a damaged header")
        if parties < 1:
            raise CorruptSegmentError(f"segment {seg.name!r} has a damaged header")
        layout = _layout(parties, max(0, stored), waiters)
        self._seg, self._offset, self._parties = seg, offset, parties
        self._timeout = p.get("timeout")
        self._cond = Condition._at(seg, offset + LOCK_SPACE, Lock._at(seg, offset))
        self._state = _core.Cell(m, offset + layout["state"], "i")
        self._count = _core.Cell(m, offset + layout["count"], "I")
        self._members = _core.CellArray(m, offset + layout["members"], "I", parties)
        if action is None and stored == _HELD:
            raise ProcshareError(
                f"barrier {seg.name!r} has an action that lives with its handles; "
                "pass action= when attaching it by name"
            )
        if action is None and stored > 0:
            start = offset + layout["action"]
            if start + stored > seg.data_offset + seg.data_size:
                raise CorruptSegmentError(f"segment {seg.name!r} has a damaged header")
            action = pickle.loads(memoryview(m)[start : start + stored])
        self._action = action
        return self

    # -- the algorithm (every step below runs holding the condition's lock) --

    def _wait_steps(self, timeout: float | None) -> Waiting[int]:
        if timeout is None:
            timeout = self._timeout
        yield from self._cond._lock._acquire_steps(None)
        try:
            self._check()
            yield from self._enter()
            index: int = self._count.fetch_add(1)
            slot = self._join()
            try:
                if index + 1 == self._parties:
                    self._release()
                else:
                    yield from self._wait(timeout)
                return index
            finally:
                self._members.store(slot, 0)
                self._count.sub(1)
                self._exit()
        finally:
            self._cond.release()

    def _check(self) -> None:
        """CorruptSegmentError if the shared state contradicts itself (a damaged count
        would make waiters wait for arrivals that cannot come).  Holding the lock, the
        count always equals the members recorded."""
        members = sum(1 for pid in self._members[:] if pid)
        if self._count.load() != members or self._state.load() not in _STATES:
            raise CorruptSegmentError(f"barrier {self._seg.name!r} has damaged state")

    def _enter(self) -> Waiting[None]:
        while self._state.load() in (_RESETTING, _DRAINING):
            yield from self._cond._wait_steps(PROBE)
            self._drop_dead_members()
        if self._state.load() < 0:
            raise BrokenBarrierError

    def _join(self) -> int:
        members = self._members[:]
        slot: int = members.index(0)  # count < parties, so a slot is free
        self._members.store(slot, os.getpid())
        return slot

    def _release(self) -> None:
        try:
            if self._action is not None:
                self._action()
            self._state.store(_DRAINING)
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _wait(self, timeout: float | None) -> Waiting[None]:
        until = _parking.deadline(timeout)
        while self._state.load() == _FILLING:
            left = _parking.remaining(until)
            if left == 0:
                self._break()
                raise BrokenBarrierError
            yield from self._cond._wait_steps(_parking.shorter(left, PROBE))
            self._drop_dead_members()
        if self._state.load() < 0:
            raise BrokenBarrierError

    def _exit(self) -> None:
        if self._count.load() == 0 and self._state.load() in (_RESETTING, _DRAINING):
            self._state.store(_FILLING)
            self._cond.notify_all()

    def _break(self) -> None:
        self._state.store(_BROKEN)
        self._cond.notify_all()

    def _drop_dead_members(self) -> None:
        """Uncount members killed inside wait(); one killed while filling breaks the barrier."""
        dead = [i for i, pid in enumerate(self._members[:]) if pid and not _core.pid_alive(pid)]
        if not dead:
            return
        for i in dead:
            self._members.store(i, 0)
            self._count.sub(1)
        if self._state.load() == _FILLING:
            self._break()
        else:
            self._exit()

    # -- the public API -------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int:
        """Wait for all parties; return this waiter's arrival index (0 to parties-1)."""
        return _parking.run(self._wait_steps(timeout))

    async def wait_async(self, timeout: float | None = None) -> int:
        """wait() without blocking the event loop."""
        return await _parking.run_async(self._wait_steps(timeout))

    def reset(self) -> None:
        """Return to the empty state; current waiters get BrokenBarrierError."""
        with self._cond:
            if self._count.load() > 0:
                if self._state.load() in (_FILLING, _BROKEN):
                    self._state.store(_RESETTING)
            else:
                self._state.store(_FILLING)
            self._cond.notify_all()

    def abort(self) -> None:
        """Put the barrier into the broken state: current and future waits raise."""
        with self._cond:
            self._break()

    @property
    def parties(self) -> int:
        return int(self._parties)

    @property
    def n_waiting(self) -> int:
        """How many are waiting for the barrier to fill."""
        return int(self._count.load()) if self._state.load() == _FILLING else 0

    @property
    def broken(self) -> bool:
        return bool(self._state.load() == _BROKEN)

    def __repr__(self) -> str:
        return (
            f"<procshare.Barrier parties={self._parties} waiting={self.n_waiting} "
            f"broken={self.broken} {self._seg.name!r}>"
        )


def _layout(parties: int, action_size: int, waiters: int) -> dict[str, int]:
    """Byte offsets inside a Barrier's data: lock, condition, state, count, members, action."""
    state = LOCK_SPACE + condition_size(waiters)
    members = state + 8
    action = members + 4 * parties
    return {"state": state, "count": state + 4, "members": members, "action": action,
            "size": action + action_size}  # fmt: skip
