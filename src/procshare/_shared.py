"""What every shared object has: a segment, a name, unlink(), and pickling as a handle."""

from __future__ import annotations

from typing import Any

from ._segment import Segment


class Shared:
    """Mixin for types whose state lives in a segment (the attribute _seg).

    Pickling yields (type, name, extra handle arguments), never the contents;
    unpickling attaches the segment by name in the receiving process.
    """

    __slots__ = ()
    _seg: Segment

    @property
    def name(self) -> str:
        """The name other processes can attach this object by."""
        return self._seg.name

    def unlink(self) -> None:
        """Remove the name now; processes that already have the object keep using it."""
        self._seg.unlink()

    def _handle_args(self) -> tuple[Any, ...]:
        return ()

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._seg.handle(), *self._handle_args()))


def _rebuild(cls: type[Shared], name: str, *args: Any) -> Any:
    return cls._attach(name, *args)
