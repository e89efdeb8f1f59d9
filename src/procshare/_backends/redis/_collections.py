"""Dict and List on Redis: a hash and a list holding values as shared memory encodes them.

Dict: the hash ``procshare:{N}:h`` maps each key's canonical bytes (equal keys
meet in every process, as on shared memory) to the encoded value; a key that
its canonical bytes do not give back (a tuple, a float, ...) also has its
pickle in ``procshare:{N}:k``.  ``incr`` of an int is ``HINCRBY``; ``setdefault``,
``pop`` and ``compare_and_set`` of simple values are Lua steps; updates that
need Python's ``==`` or arithmetic on other types run optimistically (WATCH,
compute, commit only if the key did not change, else again).  Iteration scans
with HSCAN, so it never raises while others write (it may miss or repeat keys
changed meanwhile, as HSCAN documents).

List: the list ``procshare:{N}:l``; append, extend, pop at the ends, indexing
and ``l[i] = x`` are one command; insert and removal in the middle are Lua
steps; sort, reverse and slice assignment rewrite the list in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping, MutableSequence
from typing import Any

from ..._data.namespace import Namespace as _Namespace
from ..._shm import keys as _keys
from ..._shm.codec import encode_item
from ._base import (
    CAS_FIELD,
    RedisObject,
    bound,
    decode,
    decode_many,
    encode,
    encode_many,
    optimistic,
    register,
)

_SIMPLE = frozenset(b"sbi")  # canonical kinds a key is restored from without its pickle

#: KEYS h, k; ARGV field, value, key pickle.  The value now held (existing or new).
_SETDEFAULT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 and ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""
#: KEYS h, k; ARGV field.  The value removed, or nil.
_POP = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('HDEL', KEYS[2], ARGV[1]) end
return v
"""
#: KEYS h, k; ARGV field, n, default, key pickle.  The new value (HINCRBY's error if the
#: value there is not an integer).
_INCR = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[4]) end
end
return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
"""


def _item(key: Any, value: Any) -> tuple[bytes, bytes, bytes]:
    """(field, key pickle or b"", stored value) for key and value."""
    canon, blob, _, _ = encode_item(key, None)
    return canon, blob, encode(value)


def _exact_simple(x: object) -> bool:
    return type(x) in (int, str, bytes)


@register
class Dict(RedisObject, MutableMapping[Any, Any]):
    """``Dict(mapping=(), /, *, name=None, **kwargs)`` on Redis: see the module."""

    kind = "dict"
    parts = ("h", "k", "wake")

    def __init__(self, mapping: Any = (), /, *, name: str | None = None, **kwargs: Any) -> None:
        items = dict(mapping, **kwargs)
        encoded = [_item(k, v) for k, v in items.items()]  # errors here change nothing
        if self._open(name, {}) is None and encoded:
            self._write(encoded)

    def _write(self, encoded: list[tuple[bytes, bytes, bytes]]) -> None:
        """Write the items: one HSET, or one transaction when key pickles go with them."""
        if len(encoded) == 1 and not encoded[0][1]:  # the common case: one HSET
            field, _, value = encoded[0]
            with self._conn.errors():
                self._conn.client.hset(self.part("h"), field, value)
            return
        pipe = self._conn.client.pipeline()
        pipe.hset(self.part("h"), mapping={f: v for f, _, v in encoded})
        blobs = {f: b for f, b, _ in encoded if b}
        if blobs:
            pipe.hset(self.part("k"), mapping=blobs)
        with self._conn.errors():
            pipe.execute()

    def _key_of(self, field: bytes, blobs: dict[bytes, bytes] | None = None) -> Any:
        if field[0] in _SIMPLE:
            return _keys.restore(field, b"")
        blob = (blobs or {}).get(field)
        if blob is None:
            with self._conn.errors():
                blob = self._conn.client.hget(self.part("k"), field)
        return _keys.restore(field, blob or b"")

    def __getitem__(self, key: Any) -> Any:
        field = _keys.canonical(key)
        with self._conn.errors():
            raw = self._conn.client.hget(self.part("h"), field)
        if raw is None:
            raise KeyError(key)
        return decode(raw)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: Any, value: Any) -> None:
        self._write([_item(key, value)])

    def __delitem__(self, key: Any) -> None:
        field = _keys.canonical(key)
        with self._conn.errors():
            removed = self._conn.script(_POP)(keys=[self.part("h"), self.part("k")], args=[field])
        if removed is None:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            field = _keys.canonical(key)
        except TypeError:
            return False
        with self._conn.errors():
            return bool(self._conn.client.hexists(self.part("h"), field))

    def __len__(self) -> int:
        with self._conn.errors():
            return int(self._conn.client.hlen(self.part("h")))

    def _scan(self) -> Iterator[tuple[bytes, bytes]]:
        with self._conn.errors():
            yield from self._conn.client.hscan_iter(self.part("h"), count=500)

    def __iter__(self) -> Iterator[Any]:
        for field, _ in self._scan():
            yield self._key_of(field)

    def items(self) -> Any:
        pairs = list(self._scan())
        return list(
            zip(
                [self._key_of(f) for f, _ in pairs], decode_many([v for _, v in pairs]), strict=True
            )
        )

    def values(self) -> Any:
        return decode_many([v for _, v in self._scan()])

    def keys(self) -> Any:
        return list(self)

    def copy(self) -> dict[Any, Any]:
        return dict(self.items())

    def _getvalue(self) -> dict[Any, Any]:
        return self.copy()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        field, blob, value = _item(key, default)
        with self._conn.errors():
            raw = self._conn.script(_SETDEFAULT)(
                keys=[self.part("h"), self.part("k")], args=[field, value, blob]
            )
        return decode(raw)

    _MISSING: Any = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        field = _keys.canonical(key)
        with self._conn.errors():
            raw = self._conn.script(_POP)(keys=[self.part("h"), self.part("k")], args=[field])
        if raw is None:
            if default is Dict._MISSING:
                raise KeyError(key)
            return default
        return decode(raw)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return some (key, value) pair (on Redis: any one, not the last set)."""
        while True:
            with self._conn.errors():
                field = self._conn.client.hrandfield(self.part("h"))
            if field is None:
                raise KeyError("popitem(): dictionary is empty")
            key = self._key_of(field)
            with self._conn.errors():
                raw = self._conn.script(_POP)(keys=[self.part("h"), self.part("k")], args=[field])
            if raw is not None:
                return key, decode(raw)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Every pair written in one transaction."""
        items = dict(other, **kwargs)
        if items:
            self._write([_item(k, v) for k, v in items.items()])

    def clear(self) -> None:
        with self._conn.errors():
            self._conn.client.delete(self.part("h"), self.part("k"))

    def _change(self, key: Any, compute: Callable[[Any], tuple[bool, Any, Any]]) -> Any:
        """compute(current or _MISSING) -> (write?, new value, result), committed only if
        the dict did not change meanwhile, else computed again."""
        field, h = _keys.canonical(key), self.part("h")

        def step(pipe: Any) -> Any:
            raw = pipe.hget(h, field)
            write, new, result = compute(Dict._MISSING if raw is None else decode(raw))
            pipe.multi()
            if write:
                f, blob, value = _item(key, new)
                pipe.hset(h, f, value)
                if blob:
                    pipe.hset(self.part("k"), f, blob)
            return result

        return optimistic(self, h, step)

    def incr(self, key: Any, n: Any = 1, default: Any = 0) -> Any:
        """d[key] = d.get(key, default) + n in one step; the new value."""
        if _exact_simple(n) and type(n) is int and type(default) is int:
            field, blob, start = _item(key, default)
            with self._conn.errors():
                try:
                    return int(
                        self._conn.script(_INCR)(
                            keys=[self.part("h"), self.part("k")], args=[field, n, start, blob]
                        )
                    )
                except Exception as err:
                    if "not an integer" not in str(err) and "overflow" not in str(err):
                        raise

        def add(current: Any) -> tuple[bool, Any, Any]:
            new = (default if current is Dict._MISSING else current) + n
            return True, new, new

        return self._change(key, add)

    def compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        """d[key] = new if d[key] == expected, in one step; whether it was set."""
        if _exact_simple(expected):
            field, blob, value = _item(key, new)
            if not blob:
                with self._conn.errors():
                    return bool(
                        self._conn.script(CAS_FIELD)(
                            keys=[self.part("h")], args=[field, encode(expected), value]
                        )
                    )

        def swap(current: Any) -> tuple[bool, Any, Any]:
            hit = current is not Dict._MISSING and current == expected
            return hit, new, hit

        return bool(self._change(key, swap))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dict | dict):
            return self.copy() == (other.copy() if isinstance(other, Dict) else other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.copy())


#: KEYS l; ARGV i, value.  Inserts before index i (0 <= i <= length), moving the tail.
_INSERT = """
local i = tonumber(ARGV[1])
local n = redis.call('LLEN', KEYS[1])
if i >= n then return redis.call('RPUSH', KEYS[1], ARGV[2]) end
if i <= 0 then return redis.call('LPUSH', KEYS[1], ARGV[2]) end
local tail = redis.call('LRANGE', KEYS[1], i, -1)
redis.call('LTRIM', KEYS[1], 0, i - 1)
redis.call('RPUSH', KEYS[1], ARGV[2])
for s = 1, #tail, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(tail, s, math.min(s + 999, #tail)))
end
return n + 1
"""
#: KEYS l; ARGV i (0 <= i < length), tombstone.  The element removed from index i, or nil.
_REMOVE_AT = """
local v = redis.call('LINDEX', KEYS[1], ARGV[1])
if not v then return nil end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LREM', KEYS[1], 1, ARGV[2])
return v
"""
_TOMBSTONE = b"\xffprocshare-removed"  # no encoded value starts with 0xff


@register
class List(RedisObject, MutableSequence[Any]):
    """``List(iterable=(), /, *, name=None)`` on Redis: see the module."""

    kind = "list"
    parts = ("l", "wake")

    def __init__(self, iterable: Iterable[Any] = (), /, *, name: str | None = None) -> None:
        encoded = encode_many(iterable)  # errors here change nothing
        if self._open(name, {}) is None and encoded:
            with self._conn.errors():
                self._conn.client.rpush(self.part("l"), *encoded)

    def __len__(self) -> int:
        with self._conn.errors():
            return int(self._conn.client.llen(self.part("l")))

    def _all(self) -> list[Any]:
        with self._conn.errors():
            return decode_many(self._conn.client.lrange(self.part("l"), 0, -1))

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return self._all()[i]
        with self._conn.errors():
            raw = self._conn.client.lindex(self.part("l"), int(i.__index__()))
        if raw is None:
            raise IndexError("list index out of range")
        return decode(raw)

    def __setitem__(self, i: Any, value: Any) -> None:
        if isinstance(i, slice):
            new = list(value)
            self._rewrite(lambda items: items.__setitem__(i, new))
            return
        data = encode(value)
        try:
            with self._conn.errors():
                self._conn.client.lset(self.part("l"), int(i.__index__()), data)
        except Exception as err:
            if "out of range" in str(err) or "no such key" in str(err):
                raise IndexError("list assignment index out of range") from None
            raise

    def _index(self, i: Any) -> int:
        n, length = int(i.__index__()), len(self)
        if n < 0:
            n += length
        if not 0 <= n < length:
            raise IndexError("list index out of range")
        return n

    def __delitem__(self, i: Any) -> None:
        if isinstance(i, slice):
            self._rewrite(lambda items: items.__delitem__(i))
            return
        self.pop(i)

    def pop(self, index: Any = -1) -> Any:
        n = int(index.__index__())
        with self._conn.errors():
            if n == -1:
                raw = self._conn.client.rpop(self.part("l"))
            elif n == 0:
                raw = self._conn.client.lpop(self.part("l"))
            else:
                raw = self._conn.script(_REMOVE_AT)(
                    keys=[self.part("l")], args=[self._index(n), _TOMBSTONE]
                )
        if raw is None:
            raise IndexError("pop from empty list" if n in (0, -1) else "pop index out of range")
        return decode(raw)

    def insert(self, index: Any, value: Any) -> None:
        data, i = encode(value), int(index.__index__())
        if i < 0:
            i = max(0, i + len(self))
        with self._conn.errors():
            self._conn.script(_INSERT)(keys=[self.part("l")], args=[i, data])

    def append(self, value: Any) -> None:
        data = encode(value)
        with self._conn.errors():
            self._conn.client.rpush(self.part("l"), data)

    def extend(self, values: Iterable[Any]) -> None:
        encoded = encode_many(values)
        if encoded:
            with self._conn.errors():
                self._conn.client.rpush(self.part("l"), *encoded)

    def __iadd__(self, values: Iterable[Any]) -> Any:
        self.extend(values)
        return self

    def remove(self, value: Any) -> None:
        """Remove the first element equal to value (compared as encoded: 1 is not 1.0)."""
        with self._conn.errors():
            done = self._conn.client.lrem(self.part("l"), 1, encode(value))
        if not done:
            raise ValueError("list.remove(x): x not in list")

    def _rewrite(self, change: Callable[[list[Any]], object]) -> None:
        """Read, change and write the whole list in one transaction (again if it changed)."""
        key = self.part("l")

        def step(pipe: Any) -> None:
            items = decode_many(pipe.lrange(key, 0, -1))
            change(items)
            encoded = encode_many(items)
            pipe.multi()
            pipe.delete(key)
            if encoded:
                pipe.rpush(key, *encoded)

        optimistic(self, key, step)

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        self._rewrite(lambda items: items.sort(key=key, reverse=reverse))

    def reverse(self) -> None:
        self._rewrite(lambda items: items.reverse())

    def clear(self) -> None:
        with self._conn.errors():
            self._conn.client.delete(self.part("l"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._all())

    def __contains__(self, value: object) -> bool:
        return value in self._all()

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        return self._all().index(value, start, stop if stop is not None else 2**62)

    def count(self, value: Any) -> int:
        return self._all().count(value)

    def copy(self) -> list[Any]:
        return self._all()

    def _getvalue(self) -> list[Any]:
        return self._all()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, List | list):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._all())


def namespace_for(conn: Any) -> Callable[..., Any]:
    """The context's Namespace: shared memory's Namespace over a Dict of this server."""

    def Namespace(*, name: str | None = None, **attributes: Any) -> _Namespace:
        ns = _Namespace._of(bound(Dict, conn)(name=name))  # type: ignore[arg-type]
        ns._dict.update(attributes)
        return ns

    return Namespace
