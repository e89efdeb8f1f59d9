"""Objects that outgrow their segment: a fixed root, and generations of a table segment.

The root segment (the object's name) holds the writers' recursive robust
lock, the current generation number and the pids of the processes that
hold it; the data lives in a table segment named
``<name>~<token>.<generation>`` (outside the user name space; the token is
fresh for every object, and each table's header names its root and token).
Readers never lock: they load the generation (one atomic read), re-attach
if it changed, read, and check that the generation did not change meanwhile.
A writer that needs a bigger (or rearranged) table builds the next
generation, publishes it with one store and unlinks the old one; processes
still mapping the old table keep a valid, stale view until their next
operation.  A writer killed while building leaves an unpublished segment,
replaced by the next build.

After unlink() the handles that exist keep working: the tables are removed
when the last process holding one lets go (its handles collected, or a
normal exit) or is found dead.

An anonymous Dict or List has no root segment of its own: its root takes a
slot of an arena (arena.py), with room for fewer users and its token, and
its first table lives in the same slot when the contents fit a few hundred
bytes (else in a table segment, generation 2, as if it had grown there).
A million of them, nested in a Dict, take one slot each and a few mappings
in all; one that grows moves to table segments as any other.  Their tables
go when the slot is freed, or when the arena's name is removed and no
process holds them.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import struct
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .. import _core, _process
from .._errors import CorruptSegmentError, NotFoundError, ProcshareError
from .._sync.lock import RLock
from . import names as _names
from .arena import (
    SLOT_HEADER,
    Geometry,
    Slot,
    _Arena,
    _pools,
    live,
    place,
    slot_base,
)
from .names import Kind
from .segment import DEFAULT_MODE, Segment, at_exit, check_trust
from .shared import Shared

T = TypeVar("T")
_G = TypeVar("_G", bound="Generational")

#: Processes a root records as its users (more are counted in one word, and a
#: SIGKILL among those leaves the tables of an unlinked root until rm --dead).
USERS = 896

# The root's data, laid out by the core: the writers' lock, the generation counter,
# users beyond the table, then the pids of the processes holding a handle (0: free).
_GEN, _OVERFLOW, _USERS = _core.ROOT_GEN, _core.ROOT_OVERFLOW, _core.ROOT_USERS
ROOT_SIZE = _USERS + 4 * USERS  # with the header, one page

_WORD = struct.Struct("<Q")

#: A root in an arena slot records this many users; its token and first table follow
#: (the first table has the rest of the slot).
SLOT_USERS = _core.SLOT_USERS
_TOKEN, _INLINE = _core.ROOT_TOKEN, _core.ROOT_INLINE
#: Where a new root of this process sits while its handle has made no Slot: its arena,
#: slot index and the fork epoch it was made in.
_Place = tuple[_Arena, int, int]


def blank_root(
    cls: type[Generational], init: Callable[..., None], args: Callable[[int], tuple[int, ...]]
) -> tuple[Any, ...]:
    """cls._blank: its pool's key (as place() makes it for no parameters), then the table
    init and its arguments (after mapping and offset), given the space, for an empty
    first table in an anonymous root's slot."""
    return (cls._kind, DEFAULT_MODE), init, args(_inline_space(cls._root_slot))


def _inline_space(slot: int) -> int:
    """Bytes a first table has in a root's slot of slot bytes."""
    return slot - SLOT_HEADER - _INLINE


class _Signature:
    """A class's ``__signature__``, for inspect: the constructor is the core's, so the
    signature is that of the class's ``_new``, unless the class defines a constructor of
    its own (None: inspect reads that one)."""

    def __get__(self, obj: object, cls: type[Generational]) -> inspect.Signature | None:
        if obj is not None or "__new__" in vars(cls) or "__init__" in vars(cls):
            return None
        return inspect.signature(cls._new)


class Generational(Shared, _core.Generation):
    """Base of Dict and List: the root, the current table, and how to replace it.

    The current table (``_table``), its generation (``_gen``), the root's generation
    word and the writers' lock (``_writers``) live in the C base, where the one-call
    paths read them.  The constructor is the C base's too: with no arguments it makes an
    empty one in a free slot of the class's pool in one call (``_blank`` names the pool
    and lays out the first table), else it calls the class's ``_new``, which builds it
    from its arguments.  ``__init__`` then does nothing, and called again on an existing
    object calls ``_reinit`` (as list's replaces and dict's updates).  A new root in this
    process's arena slot (written by the core, ``_core.root_in_slot`` when ``_new`` makes
    it) starts with its table alone: its Slot, lock and token (``_seg``, ``_lock``,
    ``_token``) are made when first asked for, since one handed straight to a Dict
    (``d[user] = List()``) needs none of them.  Collected, the C base lets go of it:
    ``_hold.gone()``, or for a new root whose handle made no Slot, the core frees its
    slot or clears this process's users entry.
    """

    __slots__ = ("_table_token",)
    __signature__ = _Signature()
    _kind: ClassVar[Kind]
    _table_kind: ClassVar[Kind]
    _table_type: ClassVar[type[Any]]  # built as _table_type(mapping, offset[, size])
    _root_slot: ClassVar[int]  # bytes of an anonymous one's arena slot, header included
    _blank: ClassVar[tuple[Any, ...]]  # (pool key, init, args): Cls() made by the core
    _new: ClassVar[Callable[..., Any]]  # Cls(...) where the core does not make it itself
    _writers: RLock
    _table_seg: Segment | None  # None: the first table, in the root's slot
    _root: Segment | None  # None while a new root's companions are still to be made
    _table_token: str  # the token naming the tables: <root>~<token>.<generation>
    _hold: _Hold | None  # its place among the root's users (None: a new root's, or none yet)
    _place: _Place | None  # a new root's slot while its companions are still to be made

    @classmethod
    def _open_root(
        cls: type[_G], name: str | None, plan: Callable[[int | None], Plan], mode: int
    ) -> tuple[_G, bool]:
        """Create the root, or attach it when name exists.  The first table is built by
        plan(space): one that fills space bytes where the contents fit them (in the
        slot of an anonymous root), or with space None a table segment's.  A new root
        is published only after its first table exists, so no process ever sees a root
        without a table."""
        if name is None:
            slot = cls._root_slot
            placed = place(cls._kind, {}, slot - SLOT_HEADER, mode, slot)
            if placed is not None:
                arena, index = placed
                space = _inline_space(slot)
                if (inline := plan(space))[0] <= space:
                    return _core.root_in_slot(cls, arena, index, inline[1]), True
                return cls._grown_in_slot(arena, index, plan(None)), True
        return cls._root_segment(name, plan(None), mode)

    @classmethod
    def _root_segment(cls, name: str | None, first: Plan, mode: int) -> tuple[Any, bool]:
        """Create the root segment name (None: a new anonymous one), its first table
        (first) built before it is published, or attach it."""
        root = _names.anonymous() if name is None else name
        token = _names.token()

        def init(mapping: _core.Mapping, offset: int) -> None:
            _create_table(root, token, 1, cls._table_kind, *first, mode)
            _core.Cell(mapping, offset + _GEN, "Q").store(1)

        seg, created = Segment.open(
            name, cls._kind, {"token": token}, ROOT_SIZE, init, mode=mode, fresh_name=root
        )
        return cls._from_segment(seg), created

    @classmethod
    def _grown_in_slot(cls, arena: _Arena, index: int, first: Plan) -> Any:
        """A new root in slot index of arena whose contents outgrow the slot: its first
        table is a segment, generation 2, as if it had grown there."""
        seg = arena.slot_of(index, _core.fork_epoch())  # frees the slot if this fails
        token = _names.token_number()
        _WORD.pack_into(arena.mapping, seg.data_offset + _TOKEN, token)  # before the table
        text = _names.token_text(token)
        table = _create_table(seg.name, text, 2, cls._table_kind, *first, seg.mode)
        _tables.keep(seg.name, text, 2, table)
        _WORD.pack_into(arena.mapping, seg.data_offset + _GEN, 2)
        return cls._from_segment(seg)

    @classmethod
    def _from_segment(cls, seg: Segment) -> Any:
        """A handle of the root seg."""
        self = cls._bare()
        self._companions(seg)
        self._watch(seg.mapping, seg.data_offset + _GEN)
        self._hold = _holds.join(seg)
        self._follow(self._generation())
        return self

    def _companions(self, seg: Segment) -> None:
        """Bind the root's Segment, its tables' token and the writers' lock."""
        token = _token(seg)
        if token is None:
            raise CorruptSegmentError(f"segment {seg.name!r} has a damaged header (no token)")
        self._table_token, self._writers = token, RLock._at(seg, seg.data_offset)
        self._root = seg  # last: once it is set, so are the others

    def _made(self) -> Segment:
        """The root's Segment, a new root's companions made first if they are not yet
        (once, whichever thread asks first: one Slot per root)."""
        with _pools.making:
            place = self._place
            if place is not None:
                seg = place[0].slot_of(place[1], place[2])  # frees the slot from now on
                self._companions(seg)  # a slot's token is in its data: this cannot fail
                self._hold, self._place = _holds.made(place, seg), None
        return self._root  # type: ignore[return-value]  # set by _companions

    @property
    def _seg(self) -> Segment:  # type: ignore[override]  # made, never assigned
        """The root's Segment (an arena slot's Slot, or a root segment)."""
        root = self._root
        return root if root is not None else self._made()

    @property
    def _token(self) -> str:
        """The token naming the root's tables."""
        if self._root is None:
            self._made()
        return self._table_token

    @property
    def _lock(self) -> RLock:
        """The writers' lock (the C base holds it, for the one-call paths)."""
        if self._root is None:
            self._made()
        return self._writers

    def _handle(self) -> tuple[Kind, str, int]:
        """(kind, name, mode) to pickle, without making the companions of a new root."""
        place = self._place
        if place is None:
            return super()._handle()
        return place[0].handle(place[1])

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        return cls._from_segment(Segment.attach(name, cls._kind))

    @classmethod
    def _after_unlink(cls, seg: Segment) -> None:
        """The root's name was removed: its tables go once no process uses them."""
        _drop_unused_tables(seg)

    @classmethod
    def _after_arena_unlink(cls, arena: Segment, g: Geometry) -> None:
        """The name of an arena of roots was removed: the tables of those that grew out
        of their slot go once no process uses them."""
        for index, generation in live(arena, g):
            gen = slot_base(arena, g.slot, index) + SLOT_HEADER + _GEN
            if _core.Cell(arena.mapping, gen, "Q").load() > 1:
                cls._after_unlink(Slot(arena, g.kind, g.params, index, g.size, generation))

    @property
    def lock(self) -> RLock:
        """The writers' recursive lock: hold it for compound updates (``with obj.lock:``)."""
        return self._lock

    def _current(self) -> Any:
        """The current table, re-attached if another process replaced it."""
        gen = self._generation()
        if gen != self._gen:
            self._follow(gen)
        return self._table

    def _follow(self, gen: int) -> None:
        if gen == 1 and (place := self._place) is not None:  # a new root, its Slot not made
            arena, index, _ = place
            self._bind_inline(arena.mapping, arena.data(index), arena.pool.data_size)
            return
        root, token = self._seg, self._table_token  # _seg first: it makes a new root's token
        if gen == 1 and isinstance(root, Slot):
            self._bind_inline(root.mapping, root.data_offset, root.data_size)
            return
        while True:
            seg = _tables.get(root.name, token, gen)
            if seg is not None and seg.current(root.mode):
                break  # kept mapped here, its name checked as an attach checks it
            try:
                name = _names.table(root.name, token, gen)
                seg = Segment.attach(name, self._table_kind, mode=root.mode)
            except NotFoundError:
                newer = self._generation()
                if newer == gen:
                    raise CorruptSegmentError(
                        f"{root.name!r} lost its table (generation {gen})"
                    ) from None
                gen = newer  # replaced again meanwhile: follow the newer one
                continue
            if not _owned_by(seg, root.name, token):
                raise CorruptSegmentError(f"{seg.name!r} is not a table of {root.name!r}")
            break
        self._bind(seg, gen)

    def _bind_inline(self, mapping: _core.Mapping, data_offset: int, data_size: int) -> None:
        """Use the first table, inline in the root's slot (its data at data_offset, of
        data_size bytes), from now on."""
        self._table_seg, self._gen = None, 1
        self._table = type(self)._table_type(
            mapping, data_offset + _INLINE, data_size - _INLINE
        )  # confined to the slot: a damaged header cannot reach the next object

    def _bind(self, seg: Segment, gen: int) -> None:
        """Use seg, the table of generation gen, from now on (and keep it mapped here)."""
        _tables.keep(self._seg.name, self._table_token, gen, seg)  # _seg first, as in _follow
        self._table_seg, self._gen = seg, gen
        self._table = type(self)._table_type(seg.mapping, seg.data_offset)

    def _stable(self, read: Callable[[Any, Any], T], arg: Any = None) -> T:
        """read(table, arg) on one generation that stayed current throughout."""
        generation = self._generation
        while True:
            gen = generation()
            if gen != self._gen:
                self._follow(gen)
            result = read(self._table, arg)
            if generation() == gen:
                return result

    def _writable(self) -> Any:
        """The current table, for a writer holding the lock; repaired if a writer died."""
        gen = self._generation()
        if gen != self._gen:
            self._follow(gen)
        if self._lock.owner_died:
            self._table.recount()
        return self._table

    def _replace(self, size: int, init: Callable[[_core.Mapping, int], None]) -> Any:
        """Build the next generation (size bytes, filled by init), publish it, drop the old."""
        root, token = self._seg, self._table_token  # _seg first, as in _follow
        old = self._generation()
        seg = _create_table(root.name, token, old + 1, self._table_kind, size, init, root.mode)
        self._publish(old + 1)
        # Drop the old table, and the one before it in case a writer died before dropping it.
        first = _first_table(root)
        if self._gen == old and self._table_seg is not None:
            with contextlib.suppress(NotFoundError):
                self._table_seg.unlink()
        elif old >= first:
            _remove_table(_names.table(root.name, token, old), root.name, token, root.mode)
        if old > first:
            _remove_table(_names.table(root.name, token, old - 1), root.name, token, root.mode)
        self._bind(seg, old + 1)
        return self._table


#: How to build a table: its size in bytes, and init(mapping, offset) to fill it.
Plan = tuple[int, Callable[[_core.Mapping, int], None]]


class _Tables:
    """The table this process last used of each root, kept mapped (at most MAX of them,
    MAX_BYTES in all, the least recently used let go first).

    Reaching a grown List or Dict by name (``d[user]``) then maps nothing: without
    it every reach mapped the table, faulted in the pages it read, and unmapped it
    when the handle went.  A table's name (root, token, generation) never names
    another table, so a kept one is the right one while its generation is current;
    a newer generation takes its root's place.  A kept table is not a user of its
    root: when the root goes, its tables' names go as before, and their memory with
    them when this process removes them, else when it lets go of them here.
    """

    MAX = 1024
    MAX_BYTES = 64 << 20

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], tuple[int, Segment]] = {}
        self.bytes = 0
        self.guard = threading.Lock()
        os.register_at_fork(after_in_child=self.forked)

    def forked(self) -> None:
        self.guard = threading.Lock()

    def get(self, root: str, token: str, gen: int) -> Segment | None:
        """The kept table of generation gen of root, if that is the one kept."""
        key = (root, token)
        with self.guard:
            kept = self.kept.get(key)
            if kept is None or kept[0] != gen:
                self._drop(key)  # replaced since: let it go
                return None
            return kept[1]  # binding it keeps it again, as the most recently used

    def keep(self, root: str, token: str, gen: int, seg: Segment) -> None:
        """Keep seg, generation gen of root's tables, in place of an older one."""
        with self.guard:
            self._drop((root, token))
            if seg.data_size > self.MAX_BYTES // 8:
                return  # too large to hold on to
            self.kept[(root, token)] = (gen, seg)
            self.bytes += seg.data_size
            while len(self.kept) > self.MAX or self.bytes > self.MAX_BYTES:
                self._drop(next(iter(self.kept)))

    def forget(self, root: str, token: str) -> None:
        """Let go of root's kept table: its names are being removed."""
        with self.guard:
            self._drop((root, token))

    def _drop(self, key: tuple[str, str]) -> None:
        kept = self.kept.pop(key, None)
        if kept is not None:
            self.bytes -= kept[1].data_size


_tables = _Tables()


def _token(root: Segment) -> str | None:
    """The token of root's tables: in a slot's data, else in the segment's header."""
    if isinstance(root, Slot):  # written before the slot was published, never changed
        return _names.token_text(_WORD.unpack_from(root.mapping, root.data_offset + _TOKEN)[0])
    token = root.params.get("token")
    return token if isinstance(token, str) else None


def _generation(root: Segment) -> int:
    return int(_core.Cell(root.mapping, root.data_offset + _GEN, "Q").load())


def _first_table(root: Segment) -> int:
    """The first generation that is a segment of its own (a slot holds the first table)."""
    return 2 if isinstance(root, Slot) else 1


def _owned_by(table: Segment, root: str, token: str) -> bool:
    """Whether the table's header names root and token as its owner."""
    return table.params.get("root") == root and table.params.get("token") == token


def _create_table(
    root: str,
    token: str,
    gen: int,
    kind: Kind,
    size: int,
    init: Callable[[_core.Mapping, int], None],
    mode: int,
) -> Segment:
    name = _names.table(root, token, gen)
    params = {"root": root, "token": token}
    try:
        return Segment.create(name, kind, params, size, init, mode)
    except FileExistsError:
        _unlink_unfinished(name, mode)  # this writer holds the lock
        return Segment.create(name, kind, params, size, init, mode)


def _unlink_unfinished(name: str, mode: int) -> None:
    """Unlink a table that a writer died building, perhaps before it wrote a header:
    the name carries the object's token (fresh, never guessed), and the segment must be
    this user's (a forgery by another user is refused with UntrustedSegmentError)."""
    path = _names.shm_path(name)
    fd = _core.shm_open(path, False, 0)
    try:
        check_trust(name, os.fstat(fd), mode)
    finally:
        os.close(fd)
    _core.shm_unlink(path)


def _remove_table(name: str, root: str, token: str, mode: int) -> None:
    """Unlink the table name if its header proves it belongs to root (with token), or
    if it has no whole header (a writer died building it)."""
    try:  # most often there is none: one system call says so, without an attach
        os.close(_core.shm_open(_names.shm_path(name), False, 0))
    except FileNotFoundError:
        return
    except OSError:
        pass  # there but not ours to open: the attach below says why
    try:
        seg = Segment.attach(name, wait=0, mode=mode, partial=True)
    except CorruptSegmentError:
        with contextlib.suppress(ProcshareError, OSError):
            _unlink_unfinished(name, mode)
        return
    except (ProcshareError, OSError):
        return  # absent, or not provably ours: leave it (procshare rm --dead reports it)
    if _owned_by(seg, root, token):
        with contextlib.suppress(NotFoundError):
            seg.unlink()


def _remove_tables(root: Segment) -> None:
    """Unlink the root's current table and the neighbours a killed writer may leave."""
    token = _token(root)
    if token is None:
        return
    _tables.forget(root.name, token)  # its memory goes with the names
    gen = _generation(root)
    for g in range(max(_first_table(root), gen - 1), gen + 2):
        _remove_table(_names.table(root.name, token, g), root.name, token, root.mode)


def _users(mapping: _core.Mapping, data_offset: int, count: int) -> _core.CellArray:
    """The users table of the root whose data starts at data_offset (count entries)."""
    users: _core.CellArray = _core.CellArray(mapping, data_offset + _USERS, "I", count)
    return users


def _overflow(mapping: _core.Mapping, data_offset: int) -> _core.Cell:
    """How many users of that root are counted beyond its table."""
    cell: _core.Cell = _core.Cell(mapping, data_offset + _OVERFLOW, "I")
    return cell


def _in_use(root: Segment) -> bool:
    """Whether a live process holds a handle of root."""
    if _overflow(root.mapping, root.data_offset).load():
        return True
    count = SLOT_USERS if isinstance(root, Slot) else USERS
    users = _users(root.mapping, root.data_offset, count)
    return any(pid and _core.pid_alive(pid) for pid in users[:])


def _drop_unused_tables(root: Segment) -> None:
    """Remove root's tables unless a live process holds a handle of it."""
    if not _in_use(root):
        _remove_tables(root)


class _Hold:
    """This process's place in one root's users table, and how many of its handles of
    that root are alive.  (A new root this process made, while its one handle has made
    no Slot, has none: _Holds records it, as its first user.)"""

    __slots__ = ("count", "data_offset", "handles", "key", "mapping", "pid", "root", "slot",
                 "users")  # fmt: skip

    def __init__(
        self,
        key: tuple[Any, ...],
        root: Segment | _Place,
        mapping: _core.Mapping,
        data_offset: int,
        count: int,
        handles: int = 0,
    ) -> None:
        self.key = key  # (name, inode) of a root segment; a new root's place
        self.root = root  # the place of a new root until its handle makes its Slot
        self.mapping, self.data_offset, self.count = mapping, data_offset, count  # its users
        self.pid, self.slot = 0, 0  # none yet: join() takes a place (a maker's is the first)
        self.handles = handles
        self.users: _core.CellArray | None = None  # a view of the table, made when needed
        _core.untrack(self)  # in no cycle: _Holds lets go of it when it leaves

    def gone(self) -> None:
        """A handle was collected: this process leaves with its last one."""
        self.handles -= 1
        if not self.handles and _holds.held.get(self.key) is self:
            del _holds.held[self.key]
            self.leave()

    def join(self) -> None:
        """Take a slot for this process (a free one, or a dead process's), or count it
        in the overflow word when every slot is taken."""
        self.pid = _process.pid
        users = self.users = _users(self.mapping, self.data_offset, self.count)
        if users.compare_exchange(0, 0, self.pid):  # the first user's
            self.slot = 0
            return
        for i, pid in enumerate(users[:]):
            if (not pid or not _core.pid_alive(pid)) and users.compare_exchange(i, pid, self.pid):
                self.slot = i
                return
        self.slot = -1
        _overflow(self.mapping, self.data_offset).add(1)

    def leave(self) -> None:
        pid = _process.pid
        if self.pid != pid:
            return
        self.pid = 0
        root = self.root
        if isinstance(root, tuple):  # a new root whose handle made no Slot: it never grew here
            _leave_new(root, pid, self.slot)
            return
        if self.slot >= 0:
            users = self.users or _users(self.mapping, self.data_offset, self.count)
            users.compare_exchange(self.slot, pid, 0)
        else:
            _overflow(self.mapping, self.data_offset).sub(1)
        # Leave, then read the flag; unlink() sets the flag, then looks for users:
        # whichever comes second sees both and removes the tables.  An arena's object
        # that never left this process goes with its slot, and its tables with it; one
        # that never grew out of its slot has none (only this process could have built
        # one, and a build that fails removes what it made).
        if isinstance(root, Slot) and root.private():
            if _generation(root) >= _first_table(root):
                _drop_unused_tables(root)
        elif root.unlinked():
            _drop_unused_tables(root)


def _leave_new(place: _Place, pid: int, user: int) -> None:
    """Process pid leaves a new root (at place) whose handle made no Slot, as its user
    number user (-1: counted in the overflow word): its slot freed if this process alone
    knew it (zeroed when reused), else its entry cleared."""
    if _core.leave_new(place, pid, user):
        _drop_new_tables(place)


def _drop_new_tables(place: _Place) -> None:
    """The tables of the new root at place, whose name was unlinked, go once no process
    uses them (as _Hold.leave: it has none unless it grew elsewhere)."""
    _drop_unused_tables(place[0].slot_segment(place[1]))


class _Holds:
    """The Dict and List roots this process holds handles of, each in its root's users
    table while at least one handle lives.

    A process counts from its first handle until its last is collected or it
    exits normally; a forked child takes its own place for the handles it
    inherits.  A process killed by SIGKILL leaves a dead pid behind, which
    counts as gone.  When an unlinked root has no live user left, its tables
    are removed.
    """

    def __init__(self) -> None:
        # A root's hold by (name, inode); a new root this process made, by its place, None
        # while its one handle has made no Slot (this process is its first user; the
        # core lets go of it when that handle is collected).
        self.held: dict[tuple[Any, ...], _Hold | None] = {}
        os.register_at_fork(after_in_child=self.forked)
        # Before this process's anonymous segments are unlinked: a root whose name is
        # still there when its last user leaves needs no look for tables, and unlinking
        # an arena then removes the tables of its grown roots in one pass.
        at_exit.add(self.release_all, first=True)

    def made(self, place: _Place, seg: Slot) -> _Hold:
        """The hold of the new root at place, whose one handle made its Slot seg now."""
        hold = self.held.get(place)
        if hold is None:
            hold = _Hold(place, seg, seg.mapping, seg.data_offset, SLOT_USERS, handles=1)
            if place in self.held:  # this process made it: its first user
                hold.pid = _process.pid
                self.held[place] = hold
        hold.root = seg
        return hold

    def join(self, root: Segment) -> _Hold:
        """The hold of root for one more handle (root is that handle's segment)."""
        key = (root.name, root.inode)
        hold = self.held.get(key)
        if hold is None or hold.pid != _process.pid:
            count = SLOT_USERS if isinstance(root, Slot) else USERS
            hold = self.held[key] = _Hold(key, root, root.mapping, root.data_offset, count)
            hold.join()
        hold.handles += 1
        return hold

    def forked(self) -> None:
        for key, hold in list(self.held.items()):
            if hold is None:  # a new root the parent made: a place of this child's own
                arena, index, _ = key
                hold = self.held[key] = _Hold(key, key, arena.mapping, arena.data(index),
                                              SLOT_USERS, handles=1)  # fmt: skip
            hold.join()

    def release_all(self) -> None:
        while self.held:
            key, hold = self.held.popitem()
            if hold is None:
                _leave_new(key, _process.pid, 0)  # key: a place
            else:
                hold.leave()


_holds = _Holds()
# The core makes new roots in slots of these pools, and lets go of them, in one call.
_core.hold_roots(_holds.held, _pools.pools, _drop_new_tables)


def stale_table(name: str, mapped: Callable[[], set[str]]) -> bool:
    """Whether the table segment name is a leftover: not its root's current generation
    (nor the next one, being built by a live writer), or its root is gone and no
    process maps any of its tables.  mapped() names the segments processes map."""
    parsed = _names.parse_table(name)
    if parsed is None:
        return True
    root_name, token, gen = parsed
    try:
        root = Segment.attach(root_name, wait=0.5)
    except (ProcshareError, OSError):
        root = None
    if root is not None and _token(root) == token:
        current = _generation(root)
        if gen != current + 1:
            return gen != current
        try:  # the next generation: a leftover only if the writer building it is gone
            pid, _ = Segment.attach(name, wait=0, partial=True).creator()
        except (ProcshareError, OSError):
            return True
        return not _core.pid_alive(pid)
    return not any(f"~{token}." in m for m in mapped())


class _ReprGuard(threading.local):
    def __init__(self) -> None:
        self.names: set[str] = set()


_repr_running = _ReprGuard()


def guarded_repr(obj: Generational, render: Callable[[], str], again: str) -> str:
    """render(), or again when obj is already being shown (as list shows ``[...]``).

    Guarded by name, not identity: an object stored in itself comes back as a
    new Python object that is the same shared object.
    """
    name = obj._seg.name
    if name in _repr_running.names:
        return again
    _repr_running.names.add(name)
    try:
        return render()
    finally:
        _repr_running.names.discard(name)
