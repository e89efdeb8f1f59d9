"""Objects that outgrow their segment: a fixed root, and generations of a table segment.

The root segment (the object's name) holds the writers' recursive robust
lock and the current generation number; the data lives in a table segment
named ``<name>.g<generation>``.  Readers never lock: they load the
generation (one atomic read), re-attach if it changed, read, and check that
the generation did not change meanwhile.  A writer that needs a bigger (or
rearranged) table builds the next generation, publishes it with one store
and unlinks the old one; processes still mapping the old table keep a valid,
stale view until their next operation.  A writer killed while building
leaves an unpublished segment, replaced by the next build.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from . import _core, _names
from ._errors import CorruptSegmentError, NotFoundError, ProcshareError
from ._lock import LOCK_SPACE, RLock
from ._segment import Kind, Segment, companions
from ._shared import Shared

T = TypeVar("T")

_GEN = LOCK_SPACE  # offset of the generation counter in the root's data
ROOT_SIZE = LOCK_SPACE + 8


class Generational(Shared):
    """Base of Dict and List: the root, the current table, and how to replace it."""

    __slots__ = ("_gen", "_gen_cell", "_lock", "_seg", "_table", "_table_seg")
    _kind: ClassVar[Kind]
    _table_kind: ClassVar[Kind]
    _table_type: ClassVar[type[Any]]  # built as _table_type(mapping, offset)
    _gen: int
    _gen_cell: _core.Cell
    _lock: RLock
    _table: Any
    _table_seg: Segment

    @classmethod
    def _open_root(cls, name: str | None, first: Plan) -> tuple[Any, bool]:
        """Create the root, or attach it when name exists.  A new root is published
        only after its first table (built by first: size and init) exists, so no
        process ever sees a root without a table."""
        root = _names.anonymous() if name is None else name

        def init(mapping: _core.Mapping, offset: int) -> None:
            _create_table(_table_name(root, 1), cls._table_kind, *first)
            _core.Cell(mapping, offset + _GEN, "Q").store(1)

        seg, created = Segment.open(name, cls._kind, {}, ROOT_SIZE, init, fresh_name=root)
        if name is None:
            # Forked children may grow the table after this process drops the object:
            # keep the name until this process exits rather than until it drops it.
            seg.handle()
        return cls._from_segment(seg), created

    @classmethod
    def _from_segment(cls, seg: Segment) -> Any:
        self = object.__new__(cls)
        self._seg = seg
        self._lock = RLock._at(seg, seg.data_offset)
        self._gen_cell = _core.Cell(seg.mapping, seg.data_offset + _GEN, "Q")
        self._gen = 0
        companions[seg.name] = _table_names(seg.name, self._gen_cell)
        return self

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        return cls._from_segment(Segment.attach(name, cls._kind))

    @property
    def lock(self) -> RLock:
        """The writers' recursive lock: hold it for compound updates (``with obj.lock:``)."""
        return self._lock

    def _current(self) -> Any:
        """The current table, re-attached if another process replaced it."""
        gen = self._gen_cell.load()
        if gen != self._gen:
            self._follow(gen)
        return self._table

    def _follow(self, gen: int) -> None:
        while True:
            try:
                seg = Segment.attach(_table_name(self._seg.name, gen), self._table_kind)
            except NotFoundError:
                newer = self._gen_cell.load()
                if newer == gen:
                    raise CorruptSegmentError(
                        f"{self._seg.name!r} lost its table (generation {gen})"
                    ) from None
                gen = newer  # replaced again meanwhile: follow the newer one
                continue
            self._table_seg, self._gen = seg, gen
            self._table = type(self)._table_type(seg.mapping, seg.data_offset)
            return

    def _stable(self, read: Callable[[Any, Any], T], arg: Any = None) -> T:
        """read(table, arg) on one generation that stayed current throughout."""
        gen_cell = self._gen_cell
        while True:
            gen = gen_cell.load()
            if gen != self._gen:
                self._follow(gen)
            result = read(self._table, arg)
            if gen_cell.load() == gen:
                return result

    def _writable(self) -> Any:
        """The current table, for a writer holding the lock; repaired if a writer died."""
        gen = self._gen_cell.load()
        if gen != self._gen:
            self._follow(gen)
        if self._lock.owner_died:
            self._table.recount()
        return self._table

    def _replace(self, size: int, init: Callable[[_core.Mapping, int], None]) -> Any:
        """Build the next generation (size bytes, filled by init), publish it, drop the old."""
        old = self._gen_cell.load()
        seg = _create_table(_table_name(self._seg.name, old + 1), self._table_kind, size, init)
        self._gen_cell.store(old + 1)  # publish
        # Drop the old table, and the one before it in case a writer died before dropping it.
        for gone in range(max(1, old - 1), old + 1):
            with contextlib.suppress(FileNotFoundError):
                _core.shm_unlink(_names.shm_path(_table_name(self._seg.name, gone)))
        self._table_seg, self._gen = seg, old + 1
        self._table = type(self)._table_type(seg.mapping, seg.data_offset)
        return self._table


#: How to build a table: its size in bytes, and init(mapping, offset) to fill it.
Plan = tuple[int, Callable[[_core.Mapping, int], None]]


def _create_table(
    name: str, kind: Kind, size: int, init: Callable[[_core.Mapping, int], None]
) -> Segment:
    try:
        return Segment.create(name, kind, {}, size, init)
    except FileExistsError:  # left by a writer that died while building it
        _core.shm_unlink(_names.shm_path(name))
        return Segment.create(name, kind, {}, size, init)


def _table_name(root: str, gen: int) -> str:
    return f"{root}.g{gen}"


def stale_table(name: str, live: set[str]) -> bool:
    """Whether the segment name, a table of some root, is no longer that root's
    current generation (or its root, not in live, is gone)."""
    root, _, gen = name.rpartition(".g")
    if root not in live:
        return True
    try:
        seg = Segment.attach(root, wait=0.5)
    except (ProcshareError, OSError):
        return True
    return int(_core.Cell(seg.mapping, seg.data_offset + _GEN, "Q").load()) != int(gen)


def _table_names(root: str, gen_cell: _core.Cell) -> Callable[[], list[str]]:
    """The table segments to unlink along with the root named root: the current one, and
    its neighbours, which a writer killed while replacing the table may have left."""

    def names() -> list[str]:
        gen = gen_cell.load()
        return [_table_name(root, g) for g in range(max(1, gen - 1), gen + 2)]

    return names


class _ReprGuard(threading.local):
    def __init__(self) -> None:
        self.names: set[str] = set()


_repr_running = _ReprGuard()


def guarded_repr(obj: Generational, render: Callable[[], str]) -> str:
    """``Type(render())``, or ``Type(...)`` when obj is already being shown.

    Guarded by name, not identity: an object stored in itself comes back as a
    new Python object that is the same shared object.
    """
    name, kind = obj._seg.name, type(obj).__name__
    if name in _repr_running.names:
        return f"{kind}(...)"
    _repr_running.names.add(name)
    try:
        return f"{kind}({render()})"
    finally:
        _repr_running.names.discard(name)
