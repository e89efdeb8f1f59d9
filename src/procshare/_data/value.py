"""Value and RawValue: one C scalar in shared memory, with atomic operations.

Loads and stores are single atomic accesses.  On integer typecodes
``v += n``, ``v -= n``, ``add``, ``sub``, ``exchange``, ``compare_exchange``
and ``fetch_add`` / ``fetch_sub`` / ``fetch_and`` / ``fetch_or`` /
``fetch_xor`` are each one atomic step; arithmetic wraps modulo 2**bits as
the C type does.  Floating-point values get atomic add and subtract (a
compare-exchange loop).

``v.value += n`` is one atomic step too (integer and floating-point
typecodes): ``.value`` returns a LoadedInt or LoadedFloat, the number itself
marked with the object it was read from; ``loaded + n``, ``n + loaded`` and
``loaded - n`` are pending changes that remember n, and assigning one back to
the ``.value`` of the same object adds n to whatever the value is then (as
``v += n``, wrapping like the C type).  Any other assignment (``v.value = 5``,
``v.value = v.value * 2``, a pending change of another object) is a plain
store.  ``load()`` returns the plain number.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import _core
from .._errors import KindError
from .._shm.arena import InArena, place
from .._shm.names import Kind
from .._shm.segment import Segment
from .._shm.shared import Shared
from .._shm.typecodes import typecode_of
from .._sync.lock import LOCK_SPACE, Lock, RLock, Synchronized, lock_of, lock_param


def open_scalar(
    kind: Kind,
    name: str | None,
    params: dict[str, Any],
    initial: tuple[Any, ...],
    mode: int,
    value_at: int,
) -> Segment:
    """Create or attach the segment of a scalar: value_at bytes of lock (a Counter has
    none), then the value."""
    typecode = params["typecode"]

    def init(mapping: _core.Mapping, offset: int) -> None:
        if initial:
            _core.Cell(mapping, offset + value_at, typecode).store(initial[0])

    size = value_at + _core.itemsize(typecode)
    seg, _ = Segment.open(name, kind, params, size, init, mode=mode)
    if seg.params["typecode"] != typecode:
        raise KindError(f"{seg.name!r} holds typecode {seg.params['typecode']!r}, not {typecode!r}")
    return seg


class RawValue(InArena, Shared, _core.Cell):
    """A shared C scalar without a lock: ``RawValue(typecode_or_type, *args, name=None)``.

    ``mode=`` (default 0o600) shares the segment with the creator's group or others.
    """

    __slots__ = ("_epoch", "_slot", "_where")
    _kind: ClassVar[Kind] = Kind.VALUE
    _value_at: ClassVar[int] = LOCK_SPACE  # where the value lies in the data: after the lock

    def __new__(
        cls, typecode_or_type: object, *args: Any, name: str | None = None, mode: int = 0o600
    ) -> Any:
        return cls._make(typecode_of(typecode_or_type), args, name, mode)

    @classmethod
    def _make(
        cls, typecode: str, initial: tuple[Any, ...], name: str | None, mode: int,
        lock: object = True,
    ) -> Any:  # fmt: skip
        """A new object of this class, or by name the existing one; an anonymous one takes
        a slot in an arena."""
        if len(initial) > 1:
            raise TypeError(f"expected at most one initial value, got {len(initial)}")
        params: dict[str, Any] = {"typecode": typecode}
        if (lp := lock_param(lock)) is not None:
            params["lock"] = lp
        size = cls._value_at + _core.itemsize(typecode)
        if name is None and (placed := place(cls._kind, params, size, mode)) is not None:
            arena, index = placed
            offset = arena.data(index) + cls._value_at
            self = _core.Cell.__new__(cls, arena.mapping, offset, typecode)
            self._placed(arena, index)
            if initial:
                self.store(initial[0])
            return self._ready()
        seg = open_scalar(cls._kind, name, params, initial, mode, cls._value_at)
        return cls._from_segment(seg)

    @classmethod
    def _from_segment(cls, seg: Segment) -> Any:
        typecode = seg.params["typecode"]
        self = _core.Cell.__new__(cls, seg.mapping, seg.data_offset + cls._value_at, typecode)
        self._seg = seg
        return self._ready()

    def _ready(self) -> Any:
        """The object, once its place is known (a Value also finds its lock)."""
        return self

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        return cls._from_segment(Segment.attach(name, cls._kind))

    def get(self) -> Any:
        """The value (multiprocessing's ValueProxy.get)."""
        return self.value

    def set(self, value: Any) -> None:
        """Store value (multiprocessing's ValueProxy.set); a pending ``v.value + n`` adds n."""
        self.value = value

    def _getvalue(self) -> Any:
        return self.load()

    def get_obj(self) -> RawValue:
        """The unsynchronised object (multiprocessing's get_obj)."""
        raw: RawValue = RawValue._from_segment(self._seg)
        return raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.typecode!r}, {self.value!r})"


class Value(Synchronized, RawValue):
    """A shared C scalar with a lock (multiprocessing.Value's signature).

    ``Value(typecode_or_type, *args, lock=True, name=None)``: lock=True gives it
    its own RLock, a procshare Lock or RLock is shared with other objects, and
    lock=False returns a RawValue.  ``name=`` creates or attaches by name.
    """

    __slots__ = ("_own_lock",)
    _own_lock: Lock | RLock | None

    def __new__(
        cls,
        typecode_or_type: object,
        *args: Any,
        lock: object = True,
        name: str | None = None,
        mode: int = 0o600,
    ) -> Any:
        if lock is False:
            return RawValue(typecode_or_type, *args, name=name, mode=mode)
        return cls._make(typecode_of(typecode_or_type), args, name, mode, lock)

    def _ready(self) -> Any:
        self._own_lock = None  # found when first used: most Values never lock
        return self

    def get_lock(self) -> Lock | RLock:
        """The lock guarding compound updates of this object (found when first asked for)."""
        lock = self._own_lock
        if lock is None:
            lock = self._own_lock = lock_of(self._seg)
        return lock

    _lock = property(get_lock)  # Synchronized's lock, found lazily
