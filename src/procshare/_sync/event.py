"""Event: a flag in shared memory that processes wait for."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._shm.arena import InArena
from .._shm.names import Kind
from . import parking as _parking
from .base import SyncObject
from .parking import Park, Waiting


class Event(InArena, SyncObject):
    """``Event(*, name=None)``, multiprocessing.Event's semantics.

    ``set()``, ``clear()``, ``is_set()``, ``wait(timeout=None)`` (returns the flag),
    and ``await event.wait_async(timeout)``.
    """

    __slots__ = ("_epoch", "_flag", "_mapping", "_offset", "_park", "_slot", "_where")
    _kind = Kind.EVENT
    _flag: _core.Cell
    _mapping: _core.Mapping
    _park: Park | None  # made by the first wait

    def __new__(cls, *, name: str | None = None, mode: int = 0o600) -> Any:
        return cls._open(name, 4, _clear, mode)

    @classmethod
    def _new(cls, mapping: _core.Mapping, offset: int) -> Any:
        self = object.__new__(cls)
        self._mapping, self._offset = mapping, offset
        self._flag = _core.Cell(mapping, offset, "I")
        self._park = None
        return self

    def is_set(self) -> bool:
        return bool(self._flag.load())

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._flag.store(1)
        self._mapping.wake(self._offset)

    def clear(self) -> None:
        self._flag.store(0)

    def _wait_steps(self, timeout: float | None) -> Waiting[bool]:
        until = _parking.deadline(timeout)
        park = self._park
        if park is None:
            park = self._park = _parking.park_word(self._mapping, self._offset, 0)
        while not self._flag.load():
            left = _parking.remaining(until)
            if left == 0:
                return False
            yield park, left
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or timeout passes; return the flag."""
        if self._flag.load():
            return True
        return _parking.run(self._wait_steps(timeout))

    async def wait_async(self, timeout: float | None = None) -> bool:
        """wait() without blocking the event loop."""
        return await _parking.run_async(self._wait_steps(timeout))

    def __repr__(self) -> str:
        return f"<procshare.Event {'set' if self.is_set() else 'unset'} {self._seg.name!r}>"


def _clear(mapping: _core.Mapping, offset: int) -> None:
    """New segments and slots are zero-filled, which is a clear flag."""
