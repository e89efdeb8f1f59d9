"""ObjectValue: a shared variable holding any picklable object (a Manager's Value).

``manager.Value(label, value)`` accepts any label as its typecode, as
multiprocessing's does, and any picklable value.  A ctypes typecode gives the
atomic C Value instead; every other label gives an ObjectValue, kept in a
shared Dict under one key.  Reading ``.value`` of a number returns it marked
(see procshare._core.LoadedInt), so ``v.value += n`` and ``v.value = v.value - n``
are one atomic step: the addend is applied to whatever the value is then.  A
str, bytes, tuple or list comes back as a marked copy of the same type, so
``v.value += x`` on those appends x to what the value holds then, in one step
too (the Dict's ``incr``: computed outside its lock, committed only if the
value did not change meanwhile).
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._shm.shared import ProxyMethods
from .dict import Dict

_KEY = "value"

#: The types other than numbers whose ``+`` a read value remembers.
_SEQUENCES = (str, bytes, tuple, list)


class _Marks:
    """What a marked sequence carries: the ObjectValue it was read from, the addend."""

    _source: int
    _addend: Any

    def __add__(self, other: Any) -> Any:
        base: Any = type(self).__mro__[2]
        result = base.__add__(self, other)
        if result is NotImplemented:
            return result
        addend = other if self._addend is None else self._addend + other
        return _marked(result, self._source, addend)

    __iadd__ = __add__  # a list's += must not extend the read copy in place

    def __reduce__(self) -> tuple[Any, ...]:
        base = type(self).__mro__[2]
        return (base, (base(self),))


_marked_types = {base: type(f"Loaded{base.__name__.title()}", (_Marks, base), {})
                 for base in _SEQUENCES}  # fmt: skip


def _marked(x: Any, source: int, addend: Any = None) -> Any:
    """x marked as read from source (numbers in C, the sequence types here), else x."""
    marked_type = _marked_types.get(type(x))
    if marked_type is None:
        return _core.loaded(x, source) if addend is None else x
    m = marked_type(x)
    m._source, m._addend = source, addend
    return m


def _pending_addend(x: Any, source: int) -> Any:
    """The addend when x is (a value read from source) + addend, else None."""
    if isinstance(x, _Marks):
        return x._addend if x._source == source else None
    return _core.pending_addend(x, source)


class ObjectValue(ProxyMethods):
    """``ObjectValue(label, value, *, name=None)``: ``.value`` (also ``get()`` / ``set()``)."""

    __slots__ = ("__weakref__", "_dict", "_source", "typecode")

    def __init__(self, typecode: object, value: Any = None, *, name: str | None = None) -> None:
        self._dict = Dict(name=name)
        self._dict.setdefault(_KEY, value)
        self._dict.setdefault("typecode", typecode)
        self.typecode = self._dict["typecode"]
        self._source = _core.new_source()

    @classmethod
    def _of(cls, d: Dict) -> ObjectValue:
        self = object.__new__(cls)
        self._dict, self.typecode, self._source = d, d["typecode"], _core.new_source()
        return self

    @property
    def value(self) -> Any:
        """The value, marked so that ``v.value += x`` is atomic."""
        return _marked(self._dict[_KEY], self._source)

    @value.setter
    def value(self, new: Any) -> None:
        addend = _pending_addend(new, self._source)
        if addend is None:
            self._dict[_KEY] = new
        else:  # new is (this value as read) + addend: add to what it holds now
            self.add(addend)

    def add(self, x: Any) -> Any:
        """Set the value to value + x in one step; return the result."""
        return self._dict.incr(_KEY, x)

    def get(self) -> Any:
        """The value (multiprocessing's ValueProxy.get)."""
        return self.value

    def set(self, value: Any) -> None:
        """Store value (multiprocessing's ValueProxy.set)."""
        self.value = value

    @property
    def lock(self) -> Any:
        """The value's lock: ``with v.lock:`` makes a longer update one step."""
        return self._dict.lock

    @property
    def name(self) -> str:
        """The name other processes can attach this value by."""
        return self._dict.name

    def unlink(self) -> None:
        """Remove the name now; processes that already have the value keep using it."""
        self._dict.unlink()

    def _getvalue(self) -> Any:
        return self._dict[_KEY]

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectValue._of, (self._dict,))

    def __repr__(self) -> str:
        return f"Value({self.typecode!r}, {self._dict[_KEY]!r})"
