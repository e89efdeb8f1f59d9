"""Counter: a 64-bit signed atomic counter, the fastest exact shared count."""

from __future__ import annotations

from typing import Any

from .._shm.names import Kind
from .value import RawValue


class Counter(RawValue):
    """``Counter(initial=0, *, name=None)``: ``c += n`` and ``c -= n`` are single atomic steps.

    ``c.add(n)`` returns the new value, ``c.value`` reads it, ``c.reset()`` sets
    it to zero and returns the old value, ``int(c)`` converts.  Arithmetic
    wraps at 64 bits.  Every atomic operation of an integer RawValue works too.
    """

    __slots__ = ()
    _kind = Kind.COUNTER
    _value_at = 0  # a Counter has no lock: the value is its only data

    def __new__(cls, initial: int = 0, *, name: str | None = None, mode: int = 0o600) -> Any:
        zero = type(initial) is int and initial == 0  # a new slot or segment is zero already
        return cls._make("q", () if zero else (initial,), name, mode)

    def reset(self) -> int:
        """Set the counter to zero; return the value it had, in one atomic step."""
        old: int = self.exchange(0)
        return old

    def __repr__(self) -> str:
        return f"Counter({self.value})"
