"""ObjectValue: a shared variable holding any picklable object (a Manager's Value).

``manager.Value(label, value)`` accepts any label as its typecode, as
multiprocessing's does, and any picklable value.  A ctypes typecode gives the
atomic C Value instead; every other label gives an ObjectValue, kept in a
shared Dict under one key.  Reading ``.value`` of a number returns it marked
(see procshare._core.LoadedInt), so ``v.value += n`` and ``v.value = v.value - n``
are one atomic step: the addend is applied to whatever the value is then.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._shm.shared import ProxyMethods
from .dict import Dict

_KEY = "value"


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
        """The value; a number comes back marked, so ``v.value += n`` is atomic."""
        return _core.loaded(self._dict[_KEY], self._source)

    @value.setter
    def value(self, new: Any) -> None:
        addend = _core.pending_addend(new, self._source)
        if addend is None:
            self._dict[_KEY] = new
        else:  # new is (this value as read) + addend: add to what it holds now
            self._dict.incr(_KEY, addend)

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
