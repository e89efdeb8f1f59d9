"""Array and RawArray: a fixed-length vector of C scalars in shared memory.

Each element access is one atomic load or store; the integer elements have
the same atomic operations as Value, taking the index first
(``arr.fetch_add(i, n)``).  Slices read and write element by element.  The
buffer protocol gives zero-copy views: ``memoryview(arr)``,
``numpy.asarray(arr)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from .. import _core
from .._errors import KindError
from .._shm.names import Kind
from .._shm.segment import Segment
from .._shm.shared import Shared
from .._shm.typecodes import typecode_of
from .._sync.lock import LOCK_SPACE, Synchronized, lock_of, lock_param


def _open_array(
    name: str | None, typecode: str, size_or_initializer: object, lock: object, mode: int
) -> Segment:
    if size_or_initializer is None:
        if name is None:
            raise TypeError("size_or_initializer is required unless attaching by name")
        return Segment.attach(name, Kind.ARRAY, mode=mode)
    if isinstance(size_or_initializer, int):
        if size_or_initializer < 0:
            raise ValueError(f"array size must be >= 0, not {size_or_initializer}")
        length, initial = size_or_initializer, None
    elif isinstance(size_or_initializer, Iterable):
        initial = list(size_or_initializer)
        length = len(initial)
    else:
        raise TypeError(
            f"size_or_initializer must be an int or an iterable, "
            f"not {type(size_or_initializer).__name__}"
        )
    params: dict[str, Any] = {"typecode": typecode, "length": length}
    if (lp := lock_param(lock)) is not None:
        params["lock"] = lp

    def init(mapping: _core.Mapping, offset: int) -> None:
        if initial is not None:
            _core.CellArray(mapping, offset + LOCK_SPACE, typecode, length)[:] = initial

    itemsize = _core.itemsize(typecode)
    seg, _ = Segment.open(name, Kind.ARRAY, params, LOCK_SPACE + length * itemsize, init, mode=mode)
    found = (seg.params["typecode"], seg.params["length"])
    if found != (typecode, length):
        raise KindError(
            f"{seg.name!r} holds an array of {found[1]} {found[0]!r}, not {length} {typecode!r}"
        )
    return seg


class RawArray(Shared, _core.CellArray):
    """A shared array without a lock: ``RawArray(typecode_or_type, size_or_initializer)``.

    With ``name=`` it creates or attaches; size_or_initializer may then be
    omitted to attach whatever array has that name.
    """

    __slots__ = ("_seg",)
    _kind: ClassVar[Kind] = Kind.ARRAY

    def _getvalue(self) -> Any:
        return self[:]

    def __new__(
        cls,
        typecode_or_type: object,
        size_or_initializer: object = None,
        *,
        name: str | None = None,
        mode: int = 0o600,
    ) -> Any:
        tc = typecode_of(typecode_or_type)
        return cls._from_segment(_open_array(name, tc, size_or_initializer, True, mode))

    @classmethod
    def _from_segment(cls, seg: Segment) -> Any:
        p = seg.params
        offset = seg.data_offset + LOCK_SPACE
        self = _core.CellArray.__new__(cls, seg.mapping, offset, p["typecode"], p["length"])
        self._seg = seg
        return self

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        return cls._from_segment(Segment.attach(name, Kind.ARRAY))

    def get_obj(self) -> RawArray:
        """The unsynchronised array (multiprocessing's get_obj)."""
        raw: RawArray = RawArray._from_segment(self._seg)
        return raw

    @property
    def value(self) -> bytes | str:
        """For 'c' arrays the bytes up to the first NUL; for 'u' arrays the str likewise."""
        data = self[:]
        if isinstance(data, bytes):
            return data.split(b"\0", 1)[0]
        if isinstance(data, str):
            return data.split("\0", 1)[0]
        raise AttributeError(f"arrays of typecode {self.typecode!r} have no .value")

    @value.setter
    def value(self, new: bytes | str) -> None:
        if self.typecode not in "cu":
            raise AttributeError(f"arrays of typecode {self.typecode!r} have no .value")
        if len(new) > len(self):
            raise ValueError(f"value of length {len(new)} does not fit in {len(self)} elements")
        zero: bytes | str = b"\0" if self.typecode == "c" else "\0"
        padded = new + zero if len(new) < len(self) else new  # type: ignore[operator]
        self[: len(padded)] = padded

    @property
    def raw(self) -> bytes:
        """For 'c' arrays: all the bytes, NULs included."""
        data = self[:]
        if not isinstance(data, bytes):
            raise AttributeError("only arrays of typecode 'c' have .raw")
        return data

    @raw.setter
    def raw(self, new: bytes) -> None:
        if self.typecode != "c":
            raise AttributeError("only arrays of typecode 'c' have .raw")
        if len(new) > len(self):
            raise ValueError(f"value of length {len(new)} does not fit in {len(self)} elements")
        self[: len(new)] = new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.typecode!r}, {self[:]!r})"


class Array(Synchronized, RawArray):
    """A shared array with a lock (multiprocessing.Array's signature).

    ``Array(typecode_or_type, size_or_initializer, *, lock=True, name=None)``;
    lock=False returns a RawArray.
    """

    __slots__ = ("_lock",)

    def __new__(
        cls,
        typecode_or_type: object,
        size_or_initializer: object = None,
        *,
        lock: object = True,
        name: str | None = None,
        mode: int = 0o600,
    ) -> Any:
        if lock is False:
            return RawArray(typecode_or_type, size_or_initializer, name=name, mode=mode)
        tc = typecode_of(typecode_or_type)
        return cls._from_segment(_open_array(name, tc, size_or_initializer, lock, mode))

    @classmethod
    def _from_segment(cls, seg: Segment) -> Any:
        self = super()._from_segment(seg)
        self._lock = lock_of(seg)
        return self
