"""What every shared object has: a segment, a name, unlink(), and pickling as a handle."""

from __future__ import annotations

from typing import Any

from .. import _core
from . import names as _names
from .names import Kind
from .segment import Segment, accepted, accepting


class ProxyMethods:
    """multiprocessing's proxy protocol on the objects themselves.

    A Manager hands out procshare's objects where multiprocessing hands out
    proxies, so code written against proxies (``_callmethod``, ``_getvalue``)
    keeps working without a server in between.
    """

    __slots__ = ()

    def _callmethod(
        self, methodname: str, args: tuple[Any, ...] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """Call the method named methodname, as a proxy's _callmethod does."""
        return getattr(self, methodname)(*args, **(kwds or {}))

    def _getvalue(self) -> Any:
        """A plain copy of the contents where the type has one, else the object."""
        return self


class Shared(ProxyMethods):
    """Mixin for types whose state lives in a segment (the attribute _seg).

    Pickling yields (type, name, mode, extra handle arguments), never the
    contents; unpickling attaches the segment by name in the receiving
    process, accepting the mode it was shared with.  Two handles of the same
    object compare equal and hash alike.
    """

    __slots__ = ()
    _seg: Segment

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (kind := cls.__dict__.get("_kind")) is not None:
            _names.register(kind, cls)

    @classmethod
    def _after_unlink(cls, seg: Segment) -> None:
        """What removing the name of seg, an object of this class, must also do."""

    @property
    def name(self) -> str:
        """The name other processes can attach this object by.  An anonymous object
        whose name was asked for counts as shared from then on, as a pickled one does:
        its creator dropping it no longer frees it (it goes at the creator's exit)."""
        return self._handle()[1]

    def _handle(self) -> tuple[Kind, str, int]:
        """(kind, name, mode) to pickle; the object counts as shared from now on."""
        seg = self._seg
        return seg.kind, seg.handle(), seg.mode

    def unlink(self) -> None:
        """Remove the name now; processes that already have the object keep using it."""
        self._seg.unlink()

    def _handle_args(self) -> tuple[Any, ...]:
        return ()

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def _attach_named(cls, name: str) -> Any:
        """The object that owns the segment name, from the name alone (procshare inspect)."""
        return cls._attach(name)

    def _identity(self) -> tuple[Any, ...]:
        seg = self._seg  # an arena's objects share its inode: the data offset tells them apart
        return (seg.inode, seg.data_offset, seg.kind, getattr(self, "_offset", None))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Shared):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __reduce__(self) -> tuple[Any, ...]:
        kind, name, mode = self._handle()
        cls = type(self)
        # The class as its kind's number where that names it: one global less to pickle
        # and to look up again (a subclass is pickled by reference).
        of = int(kind) if _names.class_of(kind) is cls else cls
        return (_rebuild, (of, name, mode, *self._handle_args()))


def _recorded(cls: type[Shared]) -> tuple[int, bool]:
    """How a Dict, List or Queue stores instances of cls without pickling them (asked once
    per class, by the C codec): the number of cls's kind if that names cls and cls
    pickles as Shared does (not a subclass, nor a class with its own pickling), else 0
    (pickled); and whether cls's handles take Shared's arguments (none), else each
    handle is asked (one with arguments is pickled).  A stored handle is the record of
    ``_handle()``'s kind, name and mode, what _rebuild takes."""
    kind = getattr(cls, "_kind", None)
    plain = cls._handle_args is Shared._handle_args
    if cls.__reduce__ is not Shared.__reduce__ or kind is None or _names.class_of(kind) is not cls:
        return 0, plain
    return int(kind), plain


def _rebuild(of: type[Shared] | int, name: str, mode: int, *args: Any) -> Any:
    cls = _names.class_of(of) if type(of) is int else of
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Shared)):
        raise TypeError(f"no procshare type to attach {name!r} as ({of!r})")
    if mode == accepted():
        return cls._attach(name, *args)
    with accepting(mode):
        return cls._attach(name, *args)


_core.set_handles(Shared, _recorded, _rebuild)
