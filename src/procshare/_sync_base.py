"""What the synchronisation types share: a segment, an offset, and asyncio entry points."""

from __future__ import annotations

from typing import Any, ClassVar

from ._segment import Kind, Segment
from ._shared import Shared


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

    def _handle_args(self) -> tuple[Any, ...]:
        return (self._offset,)
