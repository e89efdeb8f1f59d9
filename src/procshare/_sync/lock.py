"""Lock and RLock: robust lock words in shared memory.

The word records the owner's pid; waiters sleep on it with futex and check
between bounded sleeps that the owner still lives, so a holder killed by
SIGKILL hands the lock to the next waiter within about 20 ms.  The new holder
sees ``lock.owner_died`` set: the data the lock protected may be half-updated.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._shm.arena import InArena
from .._shm.names import Kind
from .._shm.segment import Segment, accepting
from . import parking as _parking
from .base import AsyncAcquire, SyncObject
from .parking import Waiting


class _LockBase(InArena, SyncObject, AsyncAcquire, _core.Mutex):
    __slots__ = ("_epoch", "_offset", "_slot", "_where")
    _recursive: bool

    def __new__(cls, *, name: str | None = None, mode: int = 0o600) -> Any:
        return cls._open(name, _core.MUTEX_SIZE, _zeroed, mode)

    @classmethod
    def _new(cls, mapping: _core.Mapping, offset: int) -> Any:
        self = _core.Mutex.__new__(cls, mapping, offset, cls._recursive)
        self._offset = offset
        return self

    def _acquire_steps(
        self, timeout: float | None, saved: tuple[int, int] | None = None
    ) -> Waiting[bool]:
        """acquire() as a generator of parks (the core's own wait): for the running
        asyncio task (or this thread), or restoring what _release_save returned."""
        count, owner = (1, _parking.task_ident()) if saved is None else saved
        return self._acquiring(timeout, owner, count)

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<procshare.{type(self).__name__} {self._seg.name!r} {state}>"


class Lock(_LockBase):
    """A non-recursive lock shared between processes (multiprocessing.Lock's semantics).

    Any process or thread may release it; releasing an unlocked Lock raises ValueError.
    """

    __slots__ = ()
    _kind = Kind.LOCK
    _recursive = False


class RLock(_LockBase):
    """A recursive lock owned by one thread of one process (multiprocessing.RLock's semantics).

    Release by a thread that does not own it raises AssertionError, as multiprocessing does.
    """

    __slots__ = ()
    _kind = Kind.RLOCK
    _recursive = True


def _zeroed(mapping: _core.Mapping, offset: int) -> None:
    """New segments are zero-filled, which is an unlocked lock word."""


#: Bytes reserved in front of a synchronised object's data for its own lock (the core's).
LOCK_SPACE: int = _core.LOCK_SPACE


def lock_param(lock: object) -> list[Any] | None:
    """What a synchronised object records about its lock= argument.

    True or None means its own lock (recorded as None); a procshare Lock or
    RLock is recorded by handle so that every process attaching by name uses
    it too.
    """
    if lock is True or lock is None:
        return None
    if isinstance(lock, _LockBase):
        return [type(lock).__name__, lock._seg.handle(), lock._offset, lock._seg.mode]
    raise TypeError(
        f"lock must be True, False, or a procshare Lock or RLock, not {type(lock).__name__}"
    )


def lock_of(seg: Segment, own: type[_LockBase] = RLock) -> Any:
    """The lock of a synchronised object stored in seg (its own is of type own)."""
    param = seg.params.get("lock")
    if param is None:
        return own._at(seg, seg.data_offset)
    kind, name, offset, mode = param
    with accepting(mode):
        return {"Lock": Lock, "RLock": RLock}[kind]._attach(name, offset)


class Synchronized:
    """The API of an object guarded by a lock (attribute _lock): multiprocessing's
    synchronised wrapper (get_lock, acquire, release, with) plus ``async with``."""

    __slots__ = ()
    _lock: Lock | RLock

    def get_lock(self) -> Lock | RLock:
        """The lock guarding compound updates of this object."""
        return self._lock

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        return self._lock.acquire(block, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    async def __aenter__(self) -> bool:
        return await self._lock.acquire_async()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
