"""Arenas: many small anonymous objects in one segment, a slot each.

A segment per object costs a page of /dev/shm and a mapping, and the kernel
allows about 65,000 mappings per process.  So an anonymous object whose data
is small (a Counter, a Value, a Lock, an Event, a Semaphore) takes a slot in
an arena instead: a segment of kind ARENA holding slots of one size for
objects of one kind, parameters and mode, created and reused by one process.
A slot is a whole number of 64-byte cache lines (objects used by different
processes never share a line): an 8-byte header, then the object's data at
the offset the object would have in a segment of its own.  The slots follow
one line of the arena's own, whose first word counts the slots with memory
behind them: an arena's pages are backed as its slots are first handed out,
64 KiB at a time (a full /dev/shm raises SpaceError then, never SIGBUS
later), and whoever reads the arena reads no further, since reading a page
of /dev/shm takes memory for it as writing does.

Slot header: u32 ``generation << 1 | live``, u32 flags (segment.FLAG_*).
A handle names the arena, the slot and its generation
(``<arena>@<slot>.<generation>``); attaching checks all three against the
arena, so a stale handle never reaches another object.

Lifetimes are those of anonymous segments (see segment.py): only the creating
process allocates in its arenas, and it frees a slot for reuse when it drops
the object's last reference, unless the object escaped (a handle was pickled,
or a child was forked after it was created); the arenas are unlinked when
the creator exits normally, and ``procshare rm --dead`` removes those of a
creator that was killed.  A child starts arenas of its own.

An object in a slot is one Python object (InArena): it keeps its arena and
slot index, and the Slot that describes it as a Segment (unlink, inspect) is
made only when first asked for (its name and handle need none: handle());
until then the object frees the slot itself when collected, after that the
Slot does.  One lock makes each object's Slot once, whichever thread asks.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import _core
from .._errors import CorruptSegmentError, KindError, NotFoundError, SpaceError
from . import names as _names
from .names import Kind
from .segment import (
    DEFAULT_MODE,
    FLAG_ESCAPED,
    FLAG_UNLINKED,
    FLAGS_AT,
    HEADER_SIZE,
    PAGE,
    Segment,
    _lifetimes,
    check_mode,
    missing,
)

LINE = 64
SLOT_HEADER = _core.SLOT_HEADER  # bytes of a slot's header, before its object's data
MAX_SLOT = 256  # larger objects keep a segment of their own
_FIRST_ARENA = 64 * 1024  # bytes; each further arena of a pool doubles, up to _LAST_ARENA
_LAST_ARENA = 16 * 1024 * 1024
_CHUNK = 64 * 1024  # an arena's pages are backed with memory this many bytes at a time
_LIVE = 1
_WORDS = struct.Struct("<II")
_READY = struct.Struct("<Q")


def slot_size(data_size: int) -> int:
    """The slot an object of data_size bytes takes: header and data, in whole lines."""
    return -(-(SLOT_HEADER + data_size) // LINE) * LINE


#: slot_name(arena, index, generation): the name of the object in slot index of arena, in
#: that slot's generation (``<arena>@<index>.<generation>``); formatted by the core, which
#: also writes it into the handle records of new Dicts and Lists.
slot_name = _core.slot_name


def slot_base(arena: Segment, slot: int, index: int) -> int:
    """Where slot index (of slot bytes each) of the arena segment starts in its mapping."""
    return arena.data_offset + LINE + index * slot


def _publish_ready(mapping: _core.Mapping, data_offset: int, ready: int) -> None:
    """Let readers read the first ready slots of the arena whose data starts at
    data_offset: their pages have memory behind them now."""
    _core.Cell(mapping, data_offset, "Q").store(ready)


def readable(arena: Segment, g: Geometry) -> int:
    """How many of the arena's slots may be read: those with memory behind them (reading
    a page of /dev/shm would take memory for it, or raise SIGBUS if there is none)."""
    ready: int = _READY.unpack_from(arena.mapping, arena.data_offset)[0]
    return min(g.slots, ready)


def is_slot(name: str) -> bool:
    """Whether name is a slot's (an arena's object) rather than a segment's."""
    return _names.segment_of(name) != name


class _Arena(_core.Slots):
    """One arena segment as its creator uses it: its slots' headers and geometry (the C
    base: mapping, first, slot, slots; claim, data, generation, escape, private, release
    onto the pool's free list).  An object made in fork epoch (``_core.fork_epoch()``
    then) is this process's alone while no fork came after and its name was never handed
    out."""

    __slots__ = ("next", "pool", "ready", "seg")

    def __init__(self, pool: _Pool, seg: Segment, slot: int, slots: int, ready: int) -> None:
        super().__init__(seg.mapping, slot_base(seg, slot, 0), slot, slots, FLAGS_AT, pool.free,
                         seg.name, pool.mode)  # fmt: skip
        self.pool, self.seg = pool, seg
        self.next = 0  # slots below next have been put on the free list
        self.ready = ready  # slots below ready have memory behind them

    def slot_segment(self, index: int) -> Slot:
        """The Segment of the object in slot index, as any process would attach it."""
        pool = self.pool
        return Slot(self.seg, pool.kind, pool.params, index, pool.data_size, self.generation(index))

    def slot_of(self, index: int, epoch: int) -> Slot:
        """The Segment of the object in slot index (made in fork epoch), which frees the
        slot when collected."""
        slot = self.slot_segment(index)
        slot.owner, slot.epoch = self, epoch
        return slot

    def back(self) -> None:
        """Back the pages of the next slots with memory, then let readers see them
        (SpaceError, and nothing changed, when /dev/shm cannot spare them)."""
        start = self.first + self.ready * self.slot
        end = min(start + _CHUNK, self.first + self.slots * self.slot)
        try:
            self.mapping.back(start, end - start)
        except OSError as e:  # EFAULT: populating would have raised SIGBUS
            why = "it is full" if e.errno in (errno.EFAULT, errno.ENOMEM) else e.strerror
            raise SpaceError(
                f"cannot make a new object in arena {self.seg.name!r}: /dev/shm could not "
                f"back its next {end - start} bytes ({why})"
            ) from None
        self.ready = (end - self.first) // self.slot
        _publish_ready(self.mapping, self.seg.data_offset, self.ready)

    def handle(self, index: int) -> tuple[Kind, str, int]:
        """(kind, name, mode) of the object in slot index, handed out: from now on other
        processes may attach it, so the creator dropping it no longer frees the slot."""
        pool = self.pool
        return pool.kind, slot_name(self.seg.name, index, self.escape(index)), pool.mode


class _Pool:
    """The arenas of one (kind, parameters, mode) in the creating process, and its free slots."""

    __slots__ = ("arenas", "data_size", "free", "guard", "kind", "mode", "params", "slot")

    def __init__(self, kind: Kind, params: dict[str, Any], data_size: int, mode: int) -> None:
        self.kind, self.params, self.data_size, self.mode = kind, params, data_size, mode
        self.slot = slot_size(data_size)
        self.arenas: list[_Arena] = []
        # Slots to hand out, last first: freed ones (release) and backed ones never used.
        self.free: list[tuple[_Arena, int]] = []
        self.guard = threading.Lock()  # held while a slot is backed or an arena made

    def _grow(self) -> _Arena:
        size = min(_FIRST_ARENA << len(self.arenas), _LAST_ARENA)
        slots = (-(-(HEADER_SIZE + size) // PAGE) * PAGE - HEADER_SIZE - LINE) // self.slot
        params = {"kind": int(self.kind), "params": self.params, "size": self.data_size,
                  "slot": self.slot, "slots": slots}  # fmt: skip
        data = LINE + slots * self.slot
        backed = min(data, _CHUNK) if _pools.backs_later else data
        ready = (backed - LINE) // self.slot  # the slots wholly in the pages backed now
        seg = Segment.create(_names.anonymous(), Kind.ARENA, params, data,
                             lambda m, o: _publish_ready(m, o, ready), self.mode,
                             backed)  # fmt: skip
        _lifetimes.adopt(seg)
        if _pools.backs_later is None:  # whether this kernel backs pages on demand
            try:
                seg.mapping.back(seg.data_offset, LINE)
                _pools.backs_later = True
            except OSError:
                _pools.backs_later = False
        arena = _Arena(self, seg, self.slot, slots, ready)
        self.arenas.append(arena)
        _remember(seg, geometry(seg))
        return arena

    def more(self) -> tuple[_Arena, int]:
        """A slot never used, claimed: the next of the newest arena (its pages backed
        first, or a new arena made); the slots backed with it go on the free list."""
        with self.guard:
            arena = self.arenas[-1] if self.arenas else self._grow()
            if arena.next == arena.ready:
                if arena.ready == arena.slots:
                    arena = self._grow()
                else:
                    arena.back()
            first, arena.next = arena.next, arena.ready
            backed = range(arena.ready - 1, first, -1)
            self.free.extend(zip(itertools.repeat(arena, len(backed)), backed, strict=True))
        arena.claim(first)
        return arena, first


class _Pools:
    """This process's pools; a forked child starts with none (its parent owns those arenas)."""

    def __init__(self) -> None:
        self.pools: dict[tuple[Any, ...], _Pool] = {}
        # Whether madvise can back an arena's pages as it fills (else all at creation).
        self.backs_later: bool | None = None
        # Held while an object makes the Slot that frees its slot: one per object, even
        # if two threads ask at once (the other Slot would free the slot when dropped).
        self.making = threading.Lock()
        # Forks are counted by the core: an object made before the last one has escaped.
        os.register_at_fork(before=_core.forking, after_in_child=self.forked)

    def forked(self) -> None:
        self.pools.clear()  # the same dict: the core holds it
        self.making = threading.Lock()


_pools = _Pools()


class Geometry(NamedTuple):
    """What an arena's header says about its slots."""

    kind: Kind  # of the objects in it
    params: dict[str, Any]  # their creation parameters
    size: int  # bytes of data each
    slot: int  # bytes a slot takes
    slots: int


#: Arena segments mapped in this process, by name, and what each one's header says
#: about its slots (read once): each is mapped once, however many of its slots are in
#: use here (a slot holds its arena; the reference here is weak).
_ARENAS: dict[str, tuple[weakref.ref[Segment], Geometry]] = {}


def _remember(seg: Segment, g: Geometry) -> None:
    """Record the arena seg, mapped here, and its geometry g, until seg is collected."""
    name = seg.name

    def unmapped(ref: weakref.ref[Segment]) -> None:
        mapped = _ARENAS.get(name)
        if mapped is not None and mapped[0] is ref:
            del _ARENAS[name]

    _ARENAS[name] = (weakref.ref(seg, unmapped), g)


def geometry(seg: Segment) -> Geometry:
    """The arena seg's slots, checked against its size (CorruptSegmentError if damaged)."""
    try:
        p = seg.params
        found = Geometry(Kind(p["kind"]), p["params"], int(p["size"]), int(p["slot"]),
                         int(p["slots"]))  # fmt: skip
        valid = (
            isinstance(found.params, dict)
            and found.size > 0
            and found.slot == slot_size(found.size)
            and 0 < LINE + found.slots * found.slot <= seg.data_size
        )
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise CorruptSegmentError(f"arena {seg.name!r} has damaged parameters")
    return found


def _alive(mapping: _core.Mapping, base: int, generation: int) -> bool:
    """Whether the slot at base holds the object of that generation, not unlinked."""
    word, flags = _WORDS.unpack_from(mapping, base)
    return bool(word == (generation << 1) | _LIVE and not flags & FLAG_UNLINKED)


def place(
    kind: Kind, params: dict[str, Any], data_size: int, mode: int, largest: int = MAX_SLOT
) -> tuple[_Arena, int] | None:
    """Claim a slot for a new anonymous object of kind: (arena, index), the data zeroed and
    the header live; None when the object does not go in an arena (a slot larger than
    largest bytes, or a parameter that is a list: another object's lock).  Every object
    of one kind, mode and params takes the same data_size."""
    if type(mode) is not int or mode != DEFAULT_MODE:
        check_mode(mode)
    key = (kind, mode, *params.items()) if params else (kind, mode)
    try:
        pool = _pools.pools.get(key)
    except TypeError:
        return None
    if pool is None:
        if SLOT_HEADER + data_size > largest:
            return None
        pool = _pools.pools[key] = _Pool(kind, params, data_size, mode)
    taken: tuple[_Arena, int] | None = _core.take(pool.free)  # a freed slot, or a backed one
    return taken if taken is not None else pool.more()


def attach(name: str, kind: Kind | None, mode: int) -> Slot:
    """The slot object name (``<arena>@<slot>.<generation>``), checked against its arena."""
    arena_name, _, slot = name.rpartition("@")
    index_text, _, generation_text = slot.partition(".")
    if not (arena_name and _number(index_text) and _number(generation_text)):
        raise NotFoundError(f"no procshare object named {name!r}")
    index, generation = int(index_text), int(generation_text)
    mapped = _ARENAS.get(arena_name)
    if mapped is None or (seg := mapped[0]()) is None:
        try:
            seg = Segment.attach(arena_name, Kind.ARENA, mode=mode)
        except NotFoundError:
            raise NotFoundError(missing(name)) from None
        g = geometry(seg)
        _remember(seg, g)
    else:
        g = mapped[1]
    if index >= readable(seg, g):
        raise NotFoundError(f"no procshare object named {name!r} (no such slot)")
    if not _alive(seg.mapping, slot_base(seg, g.slot, index), generation):
        raise NotFoundError(f"no procshare object named {name!r} any more")
    if kind is not None and g.kind != kind:
        raise KindError(f"{name!r} holds a {g.kind.name.lower()}, not a {kind.name.lower()}")
    return Slot(seg, g.kind, g.params, index, g.size, generation)


def _number(text: str) -> bool:
    """Whether text is a slot's index or generation as a handle writes it."""
    return text.isascii() and text.isdigit()


def after_unlink(seg: Segment) -> None:
    """The arena seg's name was removed: whatever its objects' class does then
    (``_after_arena_unlink(arena, geometry)``: a Dict's or List's tables)."""
    try:
        g = geometry(seg)
    except CorruptSegmentError:
        return
    hook = getattr(_names.class_of(g.kind), "_after_arena_unlink", None)
    if hook is not None:
        hook(seg, g)


def _column(seg: Segment, g: Geometry, at: int) -> bytes:
    """Byte at of every readable slot's header, slot by slot: 0 the live bit's, 4 the
    flags'."""
    first = slot_base(seg, g.slot, 0) + at
    view = memoryview(seg.mapping)
    try:
        return bytes(view[first : first + readable(seg, g) * g.slot : g.slot])
    finally:
        view.release()


def live(seg: Segment, g: Geometry) -> list[tuple[int, int]]:
    """(index, generation) of each object in the arena seg now."""
    first = slot_base(seg, g.slot, 0)
    return [(i, _WORDS.unpack_from(seg.mapping, first + i * g.slot)[0] >> 1)
            for i, w in enumerate(_column(seg, g, 0)) if w & _LIVE]  # fmt: skip


def census(seg: Segment) -> dict[str, int]:
    """An arena's use: its slots, how many hold an object now, and how many of those escaped."""
    g = geometry(seg)
    held = [f for w, f in zip(_column(seg, g, 0), _column(seg, g, 4), strict=True) if w & _LIVE]
    escaped = sum(1 for f in held if f & FLAG_ESCAPED)
    return {"objects": len(held), "escaped": escaped, "slots": g.slots, "slot_bytes": g.slot}


class Slot(Segment):
    """An object's place in an arena: a Segment whose data is the slot's (flags, handle
    and unlink act on the slot; the mapping, mode and creator are the arena's)."""

    __slots__ = ("arena", "base", "epoch", "generation", "index", "owner")

    def __init__(
        self, arena: Segment, kind: Kind, params: dict[str, Any], index: int, size: int, gen: int
    ) -> None:
        self.arena, self.index, self.generation = arena, index, gen
        self.base = slot_base(arena, arena.params["slot"], index)
        super().__init__(slot_name(arena.name, index, gen), kind, arena.mapping, params,
                         self.base + SLOT_HEADER, size, arena.mode, arena.inode)  # fmt: skip
        self.owner: _Arena | None = None  # in the creator: where the slot is freed to
        self.epoch = 0  # in the creator: forks made before the object was

    def flags(self) -> _core.Cell:
        cell: _core.Cell = _core.Cell(self.mapping, self.base + 4, "I")
        return cell

    def unlink(self) -> None:
        """Take the name away: attaching fails from now on; holders keep the object."""
        if not _alive(self.mapping, self.base, self.generation):
            raise NotFoundError(f"no procshare object named {self.name!r} any more")
        self.flags().fetch_or(FLAG_UNLINKED)
        if (cls := _names.class_of(self.kind)) is not None:
            cls._after_unlink(self)

    def unlinked(self) -> bool:
        """Whether the object's name or its arena's was removed."""
        return bool((self.flags().load() | self.arena.flags().load()) & FLAG_UNLINKED)

    def private(self) -> bool:
        """Whether this is the creator's Slot of an object no other process can hold."""
        return self.owner is not None and self.owner.private(self.index, self.epoch)

    def creator(self) -> tuple[int, int]:
        return self.arena.creator()

    def __del__(self) -> None:
        """The creator's last reference is gone: the slot is free unless the object escaped."""
        if self.owner is not None:
            self.owner.release(self.index, self.epoch)


class InArena:
    """A type whose anonymous objects may sit in an arena slot without a Slot object each:
    ``_where`` is the arena until something needs the object's Segment (its name, a handle,
    unlink), which ``_seg`` then makes once; the object frees its slot when collected.
    Concrete classes declare the slots ``_where``, ``_slot`` and ``_epoch``."""

    __slots__ = ()
    _where: Segment | _Arena
    _slot: int  # the slot's index, while _where is the arena
    _epoch: int  # the fork epoch the object was made in

    @property
    def _seg(self) -> Segment:
        where = self._where
        if type(where) is _Arena:
            with _pools.making:
                where = self._where
                if type(where) is _Arena:
                    where = self._where = where.slot_of(self._slot, self._epoch)  # type: ignore[misc]
        return where  # type: ignore[return-value]

    @_seg.setter
    def _seg(self, seg: Segment) -> None:
        self._where = seg  # type: ignore[misc]  # the concrete classes declare the slots

    def _handle(self) -> tuple[Kind, str, int]:
        """(kind, name, mode) to pickle, without making the Slot while there is none."""
        where = self._where
        if type(where) is not _Arena:
            return super()._handle()  # type: ignore[misc, no-any-return]
        return where.handle(self._slot)

    def _placed(self, arena: _Arena, index: int) -> None:
        """This new object lives in the slot place() claimed."""
        self._where, self._slot, self._epoch = arena, index, _core.fork_epoch()  # type: ignore[misc]
        _core.untrack_ours(self)

    @classmethod
    def _open(
        cls, name: str | None, size: int, init: Callable[[_core.Mapping, int], None], mode: int
    ) -> Any:
        """A new object of this class whose data (size bytes, written by init) starts at its
        offset, or by name the existing one: an anonymous one takes an arena slot."""
        kind: Kind = cls._kind  # type: ignore[attr-defined]
        if name is None and (placed := place(kind, {}, size, mode)) is not None:
            arena, index = placed
            offset = arena.data(index)
            init(arena.mapping, offset)
            self = cls._new(arena.mapping, offset)
            self._placed(arena, index)
            return self
        seg, _ = Segment.open(name, kind, {}, size, init, mode=mode)
        return cls._at(seg, seg.data_offset)

    @classmethod
    def _new(cls, mapping: _core.Mapping, offset: int) -> Any:
        """The object at offset in mapping, its place not yet recorded (see _open)."""
        raise NotImplementedError

    @classmethod
    def _at(cls, seg: Segment, offset: int) -> Any:
        self = cls._new(seg.mapping, offset)
        self._seg = seg
        _core.untrack_ours(self)
        return self

    def __del__(self) -> None:
        where = getattr(self, "_where", None)  # absent if construction failed early
        if type(where) is _Arena:
            where.release(self._slot, self._epoch)
