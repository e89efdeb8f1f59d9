"""Semaphore and BoundedSemaphore: counting semaphores in shared memory.

A count has no owner, so a process that dies holding a unit does not give it
back (as with multiprocessing's POSIX semaphores); use a Lock where a dead
holder must be recovered.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import _core
from .._shm.arena import InArena
from .._shm.names import Kind
from .base import AsyncAcquire, SyncObject
from .parking import Waiting


class Semaphore(InArena, SyncObject, AsyncAcquire, _core.Semaphore):
    """``Semaphore(value=1, *, name=None)``, multiprocessing.Semaphore's semantics.

    ``acquire(block=True, timeout=None)``, ``release(n=1)``, ``get_value()``,
    ``with sem:``, ``await sem.acquire_async(timeout)`` and ``async with sem:``.
    """

    __slots__ = ("_epoch", "_offset", "_slot", "_where")
    _kind: ClassVar[Kind] = Kind.SEMAPHORE
    _bounded: ClassVar[bool] = False

    def __new__(cls, value: int = 1, *, name: str | None = None, mode: int = 0o600) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"semaphore value must be an int, not {type(value).__name__}")
        if not 0 <= value <= _core.SEMAPHORE_MAX:
            raise ValueError(f"semaphore value must be 0 to {_core.SEMAPHORE_MAX}, not {value}")

        def init(mapping: _core.Mapping, offset: int) -> None:
            _core.Semaphore.init(mapping, offset, value, value if cls._bounded else 0)

        return cls._open(name, _core.SEMAPHORE_SIZE, init, mode)

    @classmethod
    def _new(cls, mapping: _core.Mapping, offset: int) -> Any:
        self = _core.Semaphore.__new__(cls, mapping, offset)
        self._offset = offset
        return self

    def _acquire_steps(self, timeout: float | None) -> Waiting[bool]:
        return self._acquiring(timeout)

    def __repr__(self) -> str:
        return f"<procshare.{type(self).__name__}(value={self.get_value()}) {self._seg.name!r}>"


class BoundedSemaphore(Semaphore):
    """``BoundedSemaphore(value=1, *, name=None)``: releasing past the initial value raises
    ValueError and changes nothing."""

    __slots__ = ()
    _kind = Kind.BOUNDED_SEMAPHORE
    _bounded = True
