"""Value, RawValue, Counter, Array, RawArray on Redis: numbers in a hash, updated in place.

A number lives in its object's hash (field ``v``; an Array's items in fields
``0``..``n-1``).  Adding is ``HINCRBY`` / ``HINCRBYFLOAT``: one command, atomic on
the server.  Types of 32 bits or fewer wrap as their C type does, in one Lua
step; 64-bit types raise OverflowError at the edge instead (Lua's numbers are
doubles, so a wrap there would be inexact).  ``v.value += n`` is one step as on
shared memory: ``.value`` returns a number that remembers this object, and the
setter turns "that number + n" into ``HINCRBY n``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

from ... import _core
from ..._shm.typecodes import typecode_of
from ._base import CAS_FIELD, RedisObject, bound, register

_INTS = {
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
}
_I64 = (-(2**63), 2**63 - 1)

#: HINCRBY with the C type's wrap: KEYS[1] the hash; ARGV field, n, lo, hi.
_ADD_WRAPPED = """
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
local lo, hi = tonumber(ARGV[3]), tonumber(ARGV[4])
if v < lo or v > hi then
  v = (v - lo) % (hi - lo + 1) + lo
  redis.call('HSET', KEYS[1], ARGV[1], v)
end
return v
"""
#: Store and return the previous: KEYS[1] the hash; ARGV field, new.
_EXCHANGE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
"""


class _Numbers(RedisObject):
    """Typed numbers in the object's hash: the typecode's range, encoding and steps."""

    typecode: str
    _lock: Any  # a lease Lock or RLock, or None

    def _set_typecode(self, typecode: str) -> None:
        self.typecode = typecode
        c_type = _INTS.get(typecode)
        if c_type is None:
            self._range: tuple[int, int] | None = None
        else:
            bits = 8 * ctypes.sizeof(c_type)
            signed = typecode.islower()
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            self._range = (lo, hi)

    def _open_locked(self, name: str | None, fields: dict[str, Any], lock: Any) -> None:
        """Create or attach with fields and a lock: True (a new lease RLock), False (none),
        or a Lock or RLock of the same server; an attached object keeps its own."""
        from ._sync import RLock, lock_for

        lk: Any = None
        if lock is True:
            lk = bound(RLock, self._conn)()
        elif lock is not False and lock is not None:
            lk = lock_for(lock, self._conn)
        fields["lock"] = f"{lk.kind}:{lk.name}" if lk is not None else ""
        found = self._open(name, fields)
        if found is None:
            self._lock = lk
            return
        if lock is True and lk is not None:
            lk.unlink()
        self._restore(found)

    def _restore(self, fields: dict[str, str]) -> None:
        from ._sync import lock_named

        self._set_typecode(fields["typecode"])
        self._length = int(fields.get("len", 1))
        ref = fields.get("lock", "")
        self._lock = lock_named(ref, self._conn) if ref else None

    def get_lock(self) -> Any:
        """The lock this object was made with (None for a Raw type)."""
        return self._lock

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._lock.acquire(*args, **kwargs))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def _encode(self, x: Any) -> bytes:
        code = self.typecode
        if code in "fd":
            return repr(float(x)).encode()
        if code == "c":
            if not isinstance(x, bytes) or len(x) != 1:
                raise TypeError("a 'c' value is one byte (bytes of length 1)")
            return x
        if code == "u":
            if not isinstance(x, str) or len(x) != 1:
                raise TypeError("a 'u' value is one character (str of length 1)")
            return x.encode()
        if code == "?":
            return b"1" if x else b"0"
        n = x if isinstance(x, int) else int(x.__index__())
        lo, hi = self._range or _I64
        if not lo <= n <= hi or not _I64[0] <= n <= _I64[1]:
            raise OverflowError(f"{n} does not fit typecode {code!r} on Redis")
        return str(n).encode()

    def _decode(self, raw: bytes | None) -> Any:
        code = self.typecode
        if raw is None:
            raise KeyError("the object's value is gone (unlinked?)")
        if code in "fd":
            return float(raw)
        if code == "c":
            return raw
        if code == "u":
            return raw.decode()
        if code == "?":
            return raw == b"1"
        return int(raw)

    def _add(self, field: str, n: Any) -> Any:
        """field += n in one step; the new value."""
        conn = self._conn
        with conn.errors():
            if self.typecode in "fd":
                return float(conn.client.hincrbyfloat(self.key, field, float(n)))
            if self.typecode in "cu?":
                raise TypeError(f"typecode {self.typecode!r} has no arithmetic")
            n = int(n)
            lo, hi = self._range or _I64
            if hi - lo < 2**53:
                return int(conn.script(_ADD_WRAPPED)(keys=[self.key], args=[field, n, lo, hi]))
            try:
                return int(conn.client.hincrby(self.key, field, n))
            except Exception as err:
                if "overflow" in str(err):
                    raise OverflowError(f"{field} + {n} overflows 64 bits on Redis") from None
                raise

    def _cas(self, field: str, expected: Any, new: Any) -> bool:
        with self._conn.errors():
            done = self._conn.script(CAS_FIELD)(
                keys=[self.key], args=[field, self._encode(expected), self._encode(new)]
            )
        return bool(done)

    def _exchange(self, field: str, new: Any) -> Any:
        with self._conn.errors():
            old = self._conn.script(_EXCHANGE)(keys=[self.key], args=[field, self._encode(new)])
        return self._decode(old)

    def _load(self, field: str) -> Any:
        with self._conn.errors():
            return self._decode(self._conn.client.hget(self.key, field))

    def _store(self, field: str, x: Any) -> None:
        data = self._encode(x)
        with self._conn.errors():
            self._conn.client.hset(self.key, field, data)


class _Scalar(_Numbers):
    """One number: load/store, .value with one-step +=, and the atomic operations."""

    def _source(self) -> int:
        source = getattr(self, "_src", None)
        if source is None:
            source = self._src = _core.new_source()
        return source

    def load(self) -> Any:
        return self._load("v")

    def store(self, x: Any) -> None:
        self._store("v", x)

    @property
    def value(self) -> Any:
        """The value; ``v.value += n`` is one HINCRBY (see the module docstring)."""
        x = self.load()
        return (
            _core.loaded(x, self._source())
            if isinstance(x, int | float) and not isinstance(x, bool)
            else x
        )

    @value.setter
    def value(self, x: Any) -> None:
        n = _core.pending_addend(x, self._source())
        if n is not None:
            self._add("v", n)
        else:
            self.store(x)

    def get(self) -> Any:
        return self.load()

    def set(self, x: Any) -> None:
        self.value = x

    def add(self, n: Any) -> Any:
        """v += n in one step; the new value."""
        return self._add("v", n)

    def sub(self, n: Any) -> Any:
        return self._add("v", -n)

    def fetch_add(self, n: Any) -> Any:
        """v += n in one step; the previous value."""
        return self._add("v", n) - n

    def fetch_sub(self, n: Any) -> Any:
        return self._add("v", -n) + n

    def exchange(self, x: Any) -> Any:
        return self._exchange("v", x)

    def compare_exchange(self, expected: Any, desired: Any) -> bool:
        return self._cas("v", expected, desired)

    def __iadd__(self, n: Any) -> Any:
        self._add("v", n)
        return self

    def __isub__(self, n: Any) -> Any:
        self._add("v", -n)
        return self

    def __int__(self) -> int:
        return int(self.load())

    def __float__(self) -> float:
        return float(self.load())

    def __index__(self) -> int:
        return int(self.load())

    def get_obj(self) -> Any:
        return self


def _zero(code: str) -> Any:
    return b"\0" if code == "c" else "\0" if code == "u" else 0


@register
class RawValue(_Scalar):
    """``RawValue(typecode_or_type, *args, name=None)`` on Redis."""

    kind = "value"

    def __init__(self, typecode_or_type: Any, *args: Any, name: str | None = None) -> None:
        code = typecode_of(typecode_or_type)
        self._set_typecode(code)
        initial = self._encode(args[0] if args else _zero(code))
        self._open_locked(name, {"typecode": code, "v": initial}, False)


@register
class Value(RawValue):
    """``Value(typecode_or_type, *args, lock=True, name=None)`` on Redis: a RawValue with a
    lock (a lease RLock of the same server, or the Lock or RLock given)."""

    kind = "value"

    def __new__(
        cls, typecode_or_type: Any, *args: Any, lock: Any = True, name: str | None = None
    ) -> Any:
        if lock is False:
            return bound(RawValue, cls._conn)(typecode_or_type, *args, name=name)
        return super().__new__(cls)

    def __init__(
        self, typecode_or_type: Any, *args: Any, lock: Any = True, name: str | None = None
    ) -> None:
        code = typecode_of(typecode_or_type)
        self._set_typecode(code)
        initial = self._encode(args[0] if args else _zero(code))
        self._open_locked(name, {"typecode": code, "v": initial}, lock)


@register
class Counter(_Scalar):
    """``Counter(initial=0, *, name=None)`` on Redis: one 64-bit integer, INCRBY."""

    kind = "counter"

    def __init__(self, initial: int = 0, *, name: str | None = None) -> None:
        self._set_typecode("q")
        self._open_locked(name, {"typecode": "q", "v": self._encode(initial)}, False)

    def reset(self) -> int:
        """Set to zero; the previous value."""
        return int(self.exchange(0))


@register
class RawArray(_Numbers):
    """``RawArray(typecode_or_type, size_or_initializer, *, name=None)`` on Redis: items in
    fields 0..n-1 of the object's hash, each updated in one step."""

    kind = "array"
    _default_lock: Any = False

    def __init__(
        self,
        typecode_or_type: Any,
        size_or_initializer: Any,
        *,
        lock: Any = None,
        name: str | None = None,
    ) -> None:
        code = typecode_of(typecode_or_type)
        self._set_typecode(code)
        if isinstance(size_or_initializer, int):
            items: list[Any] = [_zero(code)] * size_or_initializer
        else:
            items = list(size_or_initializer)
        fields: dict[str, Any] = {"typecode": code, "len": len(items)}
        fields.update({str(i): self._encode(x) for i, x in enumerate(items)})
        self._length = len(items)
        self._open_locked(name, fields, self._default_lock if lock is None else lock)

    def __len__(self) -> int:
        return self._length

    def _field(self, i: Any) -> str:
        n = int(i.__index__())
        if n < 0:
            n += self._length
        if not 0 <= n < self._length:
            raise IndexError("array index out of range")
        return str(n)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            fields = [str(n) for n in range(*i.indices(self._length))]
            if not fields:
                return []
            with self._conn.errors():
                return [self._decode(r) for r in self._conn.client.hmget(self.key, fields)]
        return self._load(self._field(i))

    def __setitem__(self, i: Any, x: Any) -> None:
        if isinstance(i, slice):
            fields = [str(n) for n in range(*i.indices(self._length))]
            values = [self._encode(v) for v in x]
            if len(values) != len(fields):
                raise ValueError("can only assign a sequence of the same size to a slice")
            if fields:
                with self._conn.errors():
                    self._conn.client.hset(self.key, mapping=dict(zip(fields, values, strict=True)))
            return
        self._store(self._field(i), x)

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])

    def fetch_add(self, i: Any, n: Any) -> Any:
        return self._add(self._field(i), n) - n

    def add(self, i: Any, n: Any) -> Any:
        return self._add(self._field(i), n)

    def exchange(self, i: Any, x: Any) -> Any:
        return self._exchange(self._field(i), x)

    def compare_exchange(self, i: Any, expected: Any, desired: Any) -> bool:
        return self._cas(self._field(i), expected, desired)

    def get_obj(self) -> Any:
        return self


@register
class Array(RawArray):
    """``Array(typecode_or_type, size_or_initializer, *, lock=True, name=None)`` on Redis."""

    kind = "array"
    _default_lock = True
