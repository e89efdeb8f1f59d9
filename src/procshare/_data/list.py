"""List: a list shared by processes, read without locks, written under a robust lock.

Elements are immutable (tag, bytes) entries in a heap; a slot array points
at them and the length is published last, so lock-free readers see each
element whole.  ``l[i] = x``, ``append`` and ``pop()`` change one slot or the
length in place; ``insert``, ``pop(i)``, ``del l[i]`` and ``remove`` write the
new order into the table's second slot array and publish it with one store
(see procshare._native.vector); slices, sort, reverse and growth build the
next generation (procshare._shm.generations).  Readers never see a
half-shifted list.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, MutableSequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, SupportsIndex

from .. import _core
from .._shm.codec import decode_value, encode_value
from .._shm.generations import Generational, Plan, blank_root, guarded_repr
from .._shm.names import Kind

Item = tuple[int, bytes]
_MISSING: Any = object()
_END = 2**62  # "to the end" for a scan


class List(_core.ListOps, Generational, MutableSequence[Any]):
    """``List(iterable=(), /, *, name=None)``: a list shared by processes.

    The full list API, comparisons with lists and Lists, ``+``, ``*``,
    ``copy()`` (a plain list).  Values are any picklable objects; procshare
    objects are stored by reference.  ``with l.lock:`` makes compound updates
    atomic.  With ``name=`` an existing List is attached and the initial
    contents are ignored; ``mode=`` (default 0o600) shares the segment with
    the creator's group or others.  No user code (pickling, ``__eq__``, a
    sort key) runs while the cross-process lock is held.
    """

    __slots__ = ()
    _kind: ClassVar[Kind] = Kind.LIST
    _table_kind: ClassVar[Kind] = Kind.LIST_TABLE
    _table_type = _core.Vector
    _root_slot = 512  # an anonymous one's first table holds 8 small elements
    _table: _core.Vector

    if TYPE_CHECKING:  # the constructor is the core's (below)

        def __new__(
            cls, iterable: Iterable[Any] = (), /, *, name: str | None = None, mode: int = 0o600
        ) -> Self: ...

    @classmethod
    def _new(
        cls, iterable: Iterable[Any] = (), /, *, name: str | None = None, mode: int = 0o600
    ) -> Self:
        """``List(...)``, unless the core made an empty one itself (``List()`` with a slot
        of its pool at hand: ``_blank``)."""
        plan: Callable[[int | None], Plan]
        if type(iterable) is tuple and not iterable:  # the default: nothing to pack
            plan = _empty
        else:
            packed = _core.pack(iterable, False)  # errors here change nothing
            plan = functools.partial(_plan, packed) if packed[0] else _empty
        self, _ = cls._open_root(name, plan, mode)
        self._fresh = True
        return self

    def _reinit(
        self, iterable: Iterable[Any] = (), /, *, name: str | None = None, mode: int = 0o600
    ) -> None:
        """``__init__`` called again on an existing List replaces its contents, as
        list.__init__ does."""
        packed = _core.pack(iterable, False)
        with self._lock:
            self._replace(*_plan(packed))

    # -- storage ------------------------------------------------------------------

    def _items(self) -> list[Item]:
        items: list[Item] = self._stable(_all)
        return items

    def _values(self) -> list[Any]:
        values: list[Any] = self._stable(_decoded)
        return values

    def _rebuild(self, items: list[Item]) -> None:
        """Publish a new generation holding exactly items (a new order of elements)."""
        self._replace(*_plan(_core.pack(items, True)))

    def _grow(self, room: int, room_bytes: int) -> _core.Vector:
        """Publish a new generation with this one's elements, copied in C, and room for
        room more taking room_bytes (garbage is left behind: growing also compacts)."""
        old = self._table
        used, garbage, _ = old.heap()
        capacity = max(8, (len(old) + room) * 3 // 2)  # room is already geometric for appends
        heap = _aligned(max(4096, (used - garbage + room_bytes) * 3 // 2 + 16 * room))

        def init(mapping: _core.Mapping, offset: int) -> None:
            _core.Vector.init(mapping, offset, capacity, heap)
            _core.Vector(mapping, offset).copy_from(old)

        table: _core.Vector = self._replace(_core.VECTOR_HEADER + 16 * capacity + heap, init)
        return table

    def _index(self, n: int, length: int) -> int:
        """n (already an int, from _as_index) within a list of length."""
        if n < 0:
            n += length
        if not 0 <= n < length:
            raise IndexError("list index out of range")
        return n

    # -- reading --------------------------------------------------------------------

    # len(l), l[i], l[i] = v, del l[i], append, pop() and iteration are ListOps's (C):
    # these methods take what it leaves to Python.

    def _len(self) -> int:
        return len(self._current())

    def _getitem(self, i: SupportsIndex | slice) -> Any:
        if isinstance(i, slice):
            return self._values()[i]
        value = self._stable(_value, i)
        if value is _MISSING:
            raise IndexError("list index out of range")
        return value

    def _find(self, value: Any, start: int, stop: int, count: bool) -> int:
        """Scan in C: elements with a simple encoding are compared as stored bytes,
        others decoded and compared with == (no lock held)."""
        found: int = self._stable(lambda table, _: table.find(value, start, stop, count))
        return found

    def __contains__(self, value: object) -> bool:
        return self._find(value, 0, _END, False) >= 0

    def index(self, value: Any, start: SupportsIndex = 0, stop: SupportsIndex | None = None) -> int:
        length = len(self)
        first, last, _ = slice(start, stop).indices(length)  # list.index's bounds
        n = self._find(value, first, last, False)
        if n < 0:
            raise ValueError(f"{value!r} is not in list")
        return n

    def count(self, value: Any) -> int:
        return self._find(value, 0, _END, True)

    def _getvalue(self) -> list[Any]:
        return self.copy()

    def copy(self) -> list[Any]:
        """A plain list with the current contents."""
        return self._values()

    # -- writing: in place ------------------------------------------------------------

    def _append(self, value: Any) -> None:
        tag, data = encode_value(value)
        with self._lock:
            table = self._writable()
            if not table.append(tag, data):
                self._grow(len(table) + 1, 16 + len(data)).append(tag, data)

    def extend(self, values: Iterable[Any]) -> None:
        """Encoded in one C call before the lock is taken, appended in one more."""
        count, packed = _core.pack(values, False)
        with self._lock:
            done, at = self._writable().extend_packed(packed, 0)
            if done < count:
                self._grow(count - done, len(packed) - at).extend_packed(packed, at)

    def __iadd__(self, values: Iterable[Any]) -> List:  # type: ignore[misc]
        self.extend(values)
        return self

    def _pop(self, index: SupportsIndex = -1) -> Any:  # pop(): ListOps's
        i = _as_index(index)
        with self._lock:
            table = self._writable()
            n = self._index(i, len(table))
            found = table.pop_last() if n == len(table) - 1 else table.remove_at(n)
        assert found is not None
        return decode_value(*found)

    def _setitem(self, i: SupportsIndex | slice, value: Any) -> None:  # l[i] = v: ListOps's
        if isinstance(i, slice):
            new = [encode_value(v) for v in value]
            with self._lock:
                items = self._items()
                items[i] = new
                self._rebuild(items)
            return
        tag, data = encode_value(value)
        index = _as_index(i)
        with self._lock:
            table = self._writable()
            n = self._index(index, len(table))
            if not table.set(n, tag, data):  # heap full: compacted into the next table
                self._grow(0, 16 + len(data)).set(n, tag, data)

    # -- writing: rearranging (a new generation) -----------------------------------

    def _delitem(self, i: SupportsIndex | slice) -> None:  # del l[i]: ListOps's
        if not isinstance(i, slice):
            index = _as_index(i)
            with self._lock:
                table = self._writable()
                table.remove_at(self._index(index, len(table)))
            return
        with self._lock:
            items = self._items()
            del items[i]
            self._rebuild(items)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        (tag, data), i = encode_value(value), _as_index(index)
        with self._lock:
            table = self._writable()
            length = len(table)
            n = max(0, i + length) if i < 0 else min(i, length)  # list.insert's clamping
            if not table.insert(n, tag, data):  # full: the next generation, with room
                self._grow(length + 1, 16 + len(data)).insert(n, tag, data)

    def remove(self, value: Any) -> None:
        """Remove the first item equal to value (ValueError if none), in one step: found
        without the lock (__eq__ runs there), removed only if the list did not change
        meanwhile (else found again)."""
        while True:
            table, seen, n = self._stable(_scan_for, value)
            if n < 0:
                raise ValueError("list.remove(x): x not in list")
            with self._lock:
                if self._writable() is table and table.changes() == seen:
                    table.remove_at(n)
                    return

    def clear(self) -> None:
        with self._lock:
            self._rebuild([])

    def reverse(self) -> None:
        with self._lock:
            self._rebuild(self._items()[::-1])

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        """Sort in place, stably, as list.sort.  The key and comparisons run outside the
        lock; if the list changed meanwhile, ValueError and nothing changes (as list)."""
        items = self._items()
        values = [decode_value(*item) for item in items]
        keys = values if key is None else [key(v) for v in values]
        order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
        with self._lock:
            if self._items() != items:
                raise ValueError("list modified during sort")
            self._rebuild([items[i] for i in order])

    def __imul__(self, n: SupportsIndex) -> List:
        times = _as_index(n)
        with self._lock:
            self._rebuild(self._items() * times)
        return self

    # -- behaving like list -------------------------------------------------------

    def _plain(self, other: object) -> list[Any] | None:
        if isinstance(other, List):
            return other._values()
        return other if isinstance(other, list) else None

    def __eq__(self, other: object) -> bool:
        plain = self._plain(other)
        if plain is None:
            return NotImplemented
        equal: bool = self._stable(_core.Vector.equals, plain)  # in C, item by item
        return equal

    def __lt__(self, other: object) -> bool:
        plain = self._plain(other)
        return NotImplemented if plain is None else self._values() < plain

    def __le__(self, other: object) -> bool:
        plain = self._plain(other)
        return NotImplemented if plain is None else self._values() <= plain

    def __gt__(self, other: object) -> bool:
        plain = self._plain(other)
        return NotImplemented if plain is None else self._values() > plain

    def __ge__(self, other: object) -> bool:
        plain = self._plain(other)
        return NotImplemented if plain is None else self._values() >= plain

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: object) -> list[Any]:
        plain = self._plain(other)
        return NotImplemented if plain is None else self._values() + plain

    def __radd__(self, other: object) -> list[Any]:
        plain = self._plain(other)
        return NotImplemented if plain is None else plain + self._values()

    def __mul__(self, n: int) -> list[Any]:
        return self._values() * n

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return guarded_repr(self, lambda: repr(self._values()), "[...]")


def _as_index(i: object) -> int:
    """i as a list index (TypeError as list gives), computed before any lock is taken."""
    try:
        return operator.index(i)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"list indices must be integers or slices, not {type(i).__name__}"
        ) from None


def _value(table: _core.Vector, i: SupportsIndex) -> Any:
    return table.value(i, _MISSING)


def _aligned(n: int) -> int:
    return -(-n // 8) * 8


def _geometry(count: int, size: int, space: int | None = None) -> tuple[int, int]:
    """(capacity, heap bytes) of a table for count elements of size bytes of records, with
    room for as many more; with space, one that fills space bytes if they fit it."""
    if space is None:
        return max(8, 2 * count), _aligned(max(4096, 2 * size + 64 * 8))
    capacity = max(8, count)
    return capacity, max(_aligned(size + 8), (space - _core.VECTOR_HEADER - 16 * capacity) // 8 * 8)


def _plan(packed: tuple[int, bytes], space: int | None = None) -> Plan:
    """A table holding exactly the packed elements (from _core.pack), with room for as
    many more; with space, a table that fills space bytes (in a root's slot) if the
    elements fit it."""
    count, records = packed
    capacity, heap = _geometry(count, len(records), space)

    def init(mapping: _core.Mapping, offset: int) -> None:
        _core.Vector.init(mapping, offset, capacity, heap)
        if count and _core.Vector(mapping, offset).extend_packed(records, 0)[0] != count:
            raise RuntimeError("the elements did not fit the next table")

    return _core.VECTOR_HEADER + 16 * capacity + heap, init  # two slot arrays


@functools.cache
def _empty(space: int | None) -> Plan:
    """The plan of an empty List's first table (the same for every one made)."""
    return _plan((0, b""), space)


List._blank = blank_root(List, _core.Vector.init, lambda space: _geometry(0, 0, space))


def _all(table: _core.Vector, _: object) -> list[Item]:
    return table.items()


def _decoded(table: _core.Vector, _: object) -> list[Any]:
    return table.values()


def _scan_for(table: _core.Vector, value: object) -> tuple[_core.Vector, int, int]:
    """(table, its change count before the scan, the first index equal to value)."""
    seen = table.changes()
    return table, seen, table.find(value, 0, _END, False)
