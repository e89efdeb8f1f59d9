"""What the synchronisation types share: a segment, an offset, and asyncio entry points."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from .._shm.names import Kind
from .._shm.segment import Segment
from .._shm.shared import Shared
from . import parking as _parking
from .parking import Waiting


class SyncObject(Shared):
    """A synchronisation object at an offset inside a segment (its own, or a host's).

    Pickles as (name, offset), so an embedded object (a Value's lock, a
    Barrier's Condition) reaches other processes like a standalone one.
    """

    __slots__ = ()
    _kind: ClassVar[Kind]
    _offset: int

    @classmethod
    def _at(cls, seg: Segment, offset: int) -> Any:
        raise NotImplementedError

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        (offset,) = args
        return cls._at(Segment.attach(name), offset)

    @classmethod
    def _own_offset(cls, seg: Segment) -> int:
        """Where the object that owns seg lies in it."""
        return seg.data_offset

    @classmethod
    def _attach_named(cls, name: str) -> Any:
        seg = Segment.attach(name, cls._kind)
        return cls._at(seg, cls._own_offset(seg))

    def _handle_args(self) -> tuple[Any, ...]:
        return (self._offset,)


class AsyncAcquire:
    """``acquire_async`` and ``async with`` for a type that writes its acquire as a wait."""

    __slots__ = ()

    def _acquire_steps(self, timeout: float | None) -> Waiting[bool]:
        raise NotImplementedError

    async def acquire_async(self, timeout: float | None = None) -> bool:
        """Acquire without blocking the event loop; False if timeout passed first."""
        return await _parking.run_async(self._acquire_steps(timeout))

    async def __aenter__(self) -> bool:
        return await self.acquire_async()

    async def __aexit__(self, *exc: object) -> None:
        cast(Any, self).release()  # the concrete type's release (its signature varies)
