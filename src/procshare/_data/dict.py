"""Dict: a hash table in shared memory, read without locks, written under a robust lock.

A small root segment (the Dict's name) holds the writers' robust lock and
the current generation; the entries live in a table segment named
``<name>.g<generation>``.  Readers never lock: they load the generation (one
atomic read), re-attach if it changed, look the key up (entries are
immutable, slots are published with one atomic store) and check that the
generation is still the same.  Writers take the lock; when the table's slots
or heap run out, the writer builds the next generation, copies the live
entries, publishes it with one store and unlinks the old table.  A writer
killed at any point leaks heap space at worst; the next writer repairs the
counters.
"""

from __future__ import annotations

import functools
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .. import _core
from .._errors import SpaceError
from .._shm.codec import decode_value, encode_item, encode_value
from .._shm.generations import Generational, Plan, blank_root, guarded_repr
from .._shm.keys import canonical, restore
from .._shm.names import Kind

_MISSING: Any = object()
#: The largest heap a table grows to for the sake of rewrites alone (its live data may need more).
REWRITE_HEAP = 1 << 20  # 1 MiB: a rebuild costs about a millisecond, so rewrites pay it rarely
REWRITE_ROOM = 64 << 20  # the most a table keeps beyond its live data for rewrites

_INT_TAG = _core.encode_value(0)[0]  # ints stored as they are: arithmetic runs no user code


class Dict(_core.DictOps, Generational, MutableMapping[Any, Any]):
    """``Dict(mapping_or_iterable=(), /, *, name=None, **kwargs)``: a dict shared by processes.

    The full dict API; keys and values are any picklable objects (see
    procshare._shm.keys for which keys meet across processes).  Atomic helpers:
    ``incr``, ``compare_and_set``, ``setdefault``, ``pop``; compound updates
    go under ``with d.lock:``.  Values that are procshare objects are stored
    by reference.  With ``name=`` an existing Dict is attached and the
    initial contents are ignored.  ``mode=`` (default 0o600) shares the
    segment with the creator's group or others; ``name`` and ``mode`` are
    keyword-only arguments, never keys.

    No user code (pickling, ``__eq__``, ``__hash__``) runs while the
    cross-process lock is held: values are encoded first, and the atomic
    helpers compare stored bytes.
    """

    __slots__ = ()
    _kind: ClassVar[Kind] = Kind.DICT
    _table_kind: ClassVar[Kind] = Kind.DICT_TABLE
    _table_type = _core.Table
    _root_slot = 640  # an anonymous one's first table holds 6 small entries (8 slots)
    _table: _core.Table

    if TYPE_CHECKING:  # the constructor is the core's (below)

        def __new__(
            cls,
            mapping_or_iterable: object = (),
            /,
            *,
            name: str | None = None,
            mode: int = 0o600,
            **kwargs: Any,
        ) -> Self: ...

    @classmethod
    def _new(
        cls,
        mapping_or_iterable: object = (),
        /,
        *,
        name: str | None = None,
        mode: int = 0o600,
        **kwargs: Any,
    ) -> Self:
        """``Dict(...)``, unless the core made an empty one itself (``Dict()`` with a slot
        of its pool at hand: ``_blank``)."""
        initial = dict(mapping_or_iterable, **kwargs)  # type: ignore[call-overload]
        self, _ = cls._open_root(name, _holding(initial) if initial else _empty, mode)
        self._fresh = True
        return self

    def _reinit(
        self,
        mapping_or_iterable: object = (),
        /,
        *,
        name: str | None = None,
        mode: int = 0o600,
        **kwargs: Any,
    ) -> None:
        """``__init__`` called again on an existing Dict updates it, as dict.__init__
        does."""
        self.update(mapping_or_iterable, **kwargs)

    @classmethod
    def fromkeys(
        cls, iterable: Iterable[Any], value: Any = None, *, name: str | None = None
    ) -> Any:
        """A new Dict (built by ``cls()``, as dict does) with every key set to value."""
        d = cls() if name is None else cls(name=name)
        d.update(dict.fromkeys(iterable, value))
        return d

    def _read(self, canon: bytes) -> tuple[int, bytes] | None:
        return self._stable(_core.Table.get, canon)

    def _snapshot(self) -> list[tuple[int, bytes, bytes, int, bytes]]:
        """Live entries in insertion order: a consistent view of one generation."""
        entries = self._stable(_entries)
        entries.sort()
        return entries

    # -- writing (holding the lock) ----------------------------------------------

    def _put(self, canon: bytes, blob: bytes, tag: int, data: bytes) -> int:
        table: _core.Table = self._writable()
        while (done := table.put(canon, blob, tag, data)) < 0:
            table = self._grow(len(canon) + len(blob) + len(data))
        return done

    def _grow(self, extra_bytes: int, extra_keys: int = 1) -> _core.Table:
        """Build the next generation, with room for the live entries and the extra."""
        source = self._current()
        source.recount()  # the counters size the next table: never trust damaged ones
        count, _, _, used, heap, garbage, _ = source.stats()
        live = max(0, min(used, heap) - min(garbage, used))
        # Mostly garbage means rewrites: double the heap, up to REWRITE_HEAP or eight times
        # the live data (at most REWRITE_ROOM more), so that each rebuild (a new segment, the
        # live data copied) buys more rewrites than the last instead of the same few.
        room = max(REWRITE_HEAP, live + min(7 * live, REWRITE_ROOM))
        floor = min(2 * heap, room) if garbage > live else 0
        size, init = _plan(count + extra_keys, live + extra_bytes, source=source, heap_floor=floor)
        try:
            table: _core.Table = self._replace(size, init)
        except SpaceError:
            if not floor:
                raise
            # /dev/shm cannot spare the room for rewrites: the live data and the extra only
            size, init = _plan(count + extra_keys, live + extra_bytes, source=source)
            table = self._replace(size, init)
        return table

    # -- the mapping protocol ------------------------------------------------------

    def _lookup(self, key: Any, missing: Any) -> Any:
        """d.get(key, missing) when DictOps's one-call lookup declined: another
        generation, or a key that needs the general encoding."""
        found = self._read(canonical(key))
        return missing if found is None else decode_value(*found)

    # d[key], get, in, d[key] = value, incr and compare_and_set are _core.DictOps's: one
    # C call when the generation is current and the encodings simple; else these:

    def _setitem(self, key: Any, value: Any) -> None:
        """d[key] = value when DictOps's store found the table full: encode outside the
        lock, then put, growing the table."""
        item = encode_item(key, value)  # errors change nothing
        with self._lock:
            self._put(*item)

    def _delitem(self, key: Any) -> None:
        canon = canonical(key)
        with self._lock:
            if self._writable().delete(canon) is None:
                raise KeyError(key)

    def _len(self) -> int:  # len(d) is DictOps's (C): this takes another generation
        return len(self._current())

    def __iter__(self) -> Iterator[Any]:
        for _, canon, blob, _, _ in self._snapshot():
            yield restore(canon, blob)

    def __reversed__(self) -> Iterator[Any]:
        for _, canon, blob, _, _ in reversed(self._snapshot()):
            yield restore(canon, blob)

    def keys(self) -> KeysView[Any]:
        return _Keys(self)

    def values(self) -> ValuesView[Any]:
        return _Values(self)

    def items(self) -> ItemsView[Any, Any]:
        return _Items(self)

    def _pop(self, key: Any, default: Any = _MISSING) -> Any:  # pop: DictOps's
        """Remove key and return its value, in one step."""
        canon = canonical(key)
        with self._lock:
            found = self._writable().delete(canon)
        if found is not None:
            return decode_value(*found)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently inserted item (LIFO, as dict)."""
        with self._lock:
            entries = self._snapshot()
            if not entries:
                raise KeyError("popitem(): dictionary is empty")
            _, canon, blob, tag, data = entries[-1]
            self._writable().delete(canon)
        return restore(canon, blob), decode_value(tag, data)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """d[key] if present, else set it to default and return that, in one step."""
        item = encode_item(key, default)
        with self._lock:
            found = self._writable().get(item[0])
            if found is None:
                self._put(*item)
        return default if found is None else decode_value(*found)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Insert every item, all under the lock (atomic to other writers)."""
        # as dict.update: anything with keys() is a mapping, else an iterable of pairs
        keys = getattr(other, "keys", None)
        pairs = [(k, other[k]) for k in keys()] if keys is not None else list(other)
        encoded = [encode_item(k, v) for k, v in pairs]
        encoded += [encode_item(k, v) for k, v in kwargs.items()]
        with self._lock:
            for item in encoded:
                self._put(*item)

    def clear(self) -> None:
        with self._lock:
            self._writable().freeze_all()  # no in-place update may land on the old table
            self._replace(*_plan(0, 0))

    def _incr(self, key: Any, n: Any, default: Any) -> Any:
        """incr() when no int was stored to update in place: under the lock."""
        canon, blob, _, _ = encode_item(key, None)
        if type(n) is int and type(default) is int:
            with self._lock:  # ints: the sum runs no user code, do it holding the lock
                table = self._writable()
                # An int stored since (or whose word this process had lost) is updated in
                # place: replacing it would freeze the word that every other process
                # remembers and send each of them here in turn.
                done = table.incr(key, n, _MISSING)
                if done is not _MISSING:
                    return done
                found = table.freeze(canon)
                if found is None or found[0] == _INT_TAG:
                    new = (default if found is None else decode_value(*found)) + n
                    self._put(canon, blob, *encode_value(new))
                    return new
                self._table.thaw(canon)
        return self._update(canon, blob, lambda old: (default if old is _MISSING else old) + n)

    def _compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        """compare_and_set() beyond the in-place int case: compared outside the lock,
        committed under it only if the stored bytes are unchanged."""
        if type(expected) is int and type(new) is int:
            with self._lock:  # in place, as _incr does, when an int is stored
                done = self._writable().cas(key, expected, new, _MISSING)
            if done is not _MISSING:
                return bool(done)
        canon, blob, _, _ = encode_item(key, None)
        item = encode_value(new)
        while True:
            found = self._read(canon)
            if found is None or decode_value(*found) != expected:  # outside the lock
                return False
            with self._lock:
                if self._commit_if(canon, blob, found, item):
                    return True

    def _update(self, canon: bytes, blob: bytes, compute: Callable[[Any], Any]) -> Any:
        """Set the key to compute(its value, or _MISSING) in one step and return the
        result: computed and encoded outside the lock, stored only if the entry's bytes
        are still those it was computed from (else computed again)."""
        while True:
            found = self._read(canon)
            new = compute(_MISSING if found is None else decode_value(*found))
            item = encode_value(new)
            with self._lock:
                if self._commit_if(canon, blob, found, item):
                    return new

    def _commit_if(
        self, canon: bytes, blob: bytes, found: tuple[int, bytes] | None, item: tuple[int, bytes]
    ) -> bool:
        """Holding the lock: store item if the entry still holds found (an int entry is
        frozen while it is compared, so no in-place update slips in between)."""
        table = self._writable()
        if table.freeze(canon) == found:
            self._put(canon, blob, *item)
            return True
        table.thaw(canon)
        return False

    def _getvalue(self) -> dict[Any, Any]:
        return self.copy()

    def copy(self) -> dict[Any, Any]:
        """A plain dict with the current contents."""
        return {restore(c, b): decode_value(t, d) for _, c, b, t, d in self._snapshot()}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dict | dict | Mapping):
            return self.copy() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.copy() | dict(other)

    def __ror__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(other) | self.copy()

    def __ior__(self, other: Any) -> Dict:
        self.update(other)
        return self

    def __repr__(self) -> str:
        return guarded_repr(self, lambda: repr(self.copy()), "{...}")


class _Keys(KeysView[Any]):
    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._mapping))  # type: ignore[attr-defined]


class _Values(ValuesView[Any]):
    def __iter__(self) -> Iterator[Any]:
        return iter(self._mapping.copy().values())  # type: ignore[attr-defined]


class _Items(ItemsView[Any, Any]):
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self._mapping.copy().items())  # type: ignore[attr-defined]


def _plan(
    keys: int,
    live_bytes: int,
    source: _core.Table | None = None,
    items: list[tuple[bytes, bytes, int, bytes]] | None = None,
    heap_floor: int = 0,
    space: int | None = None,
) -> Plan:
    """A table for keys entries of live_bytes in all, with room to grow (a heap of at least
    heap_floor bytes), filled with the live entries of source and then items.  With space,
    a table that fills space bytes (in a root's slot) if the entries fit it."""
    nslots, heap = _geometry(keys, live_bytes, heap_floor, space)

    def init(mapping: _core.Mapping, offset: int) -> None:
        _core.Table.init(mapping, offset, nslots, heap, 0)
        if source is None and not items:
            return  # an empty table
        table = _core.Table(mapping, offset)
        if source is not None and not table.copy_from(source):
            raise RuntimeError("the live entries did not fit the next table")
        for item in items or ():
            if table.put(*item) < 0:
                raise RuntimeError("the initial entries did not fit the first table")

    return _core.TABLE_HEADER + 8 * nslots + heap, init


def _geometry(
    keys: int, live_bytes: int, heap_floor: int = 0, space: int | None = None
) -> tuple[int, int]:
    """(slots, heap bytes) of _plan's table."""
    nslots = 8
    while nslots * 3 < keys * 8:  # at most 3/8 full
        nslots *= 2
    if space is None:
        return nslots, -(-max(4096, heap_floor, 3 * (live_bytes + 48 * keys)) // 8) * 8
    return nslots, max(-(-(live_bytes + 48 * keys + 16) // 8) * 8,
                       (space - _core.TABLE_HEADER - 8 * nslots) // 8 * 8)  # fmt: skip


def _holding(initial: dict[Any, Any]) -> Callable[[int | None], Plan]:
    """plan(space) of a first table holding initial's entries (encoded now: errors here
    change nothing)."""
    encoded = [encode_item(k, v) for k, v in initial.items()]
    size = sum(len(c) + len(b) + len(d) for c, b, _, d in encoded)
    return lambda space: _plan(len(encoded), size, items=encoded, space=space)


@functools.cache
def _empty(space: int | None) -> Plan:
    """The plan of an empty Dict's first table (the same for every one made)."""
    return _plan(0, 0, space=space)


Dict._blank = blank_root(Dict, _core.Table.init, lambda space: (*_geometry(0, 0, space=space), 0))


def _entries(table: _core.Table, _: object) -> list[tuple[int, bytes, bytes, int, bytes]]:
    return table.entries()
