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
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .. import _core
from .._errors import CorruptSegmentError, NotFoundError, ProcshareError
from .._sync.lock import LOCK_SPACE, RLock
from . import names as _names
from .names import Kind
from .segment import FLAG_UNLINKED, Segment, at_exit, check_trust
from .shared import Shared

T = TypeVar("T")

#: Processes a root records as its users (more are counted in one word, and a
#: SIGKILL among those leaves the tables of an unlinked root until rm --dead).
USERS = 896

_GEN = LOCK_SPACE  # offset of the generation counter in the root's data
_OVERFLOW = LOCK_SPACE + 8  # users beyond the table
_USERS = LOCK_SPACE + 16  # pids of the processes holding a handle (0: free)
ROOT_SIZE = _USERS + 4 * USERS  # with the header, one page


class Generational(Shared, _core.Generation):
    """Base of Dict and List: the root, the current table, and how to replace it.

    The current table (``_table``), its generation (``_gen``) and the writers' lock
    (``_lock``) live in the C base, where the one-call paths read them.
    """

    __slots__ = ("_fresh", "_gen_cell", "_seg", "_table_seg")
    _kind: ClassVar[Kind]
    _table_kind: ClassVar[Kind]
    _table_type: ClassVar[type[Any]]  # built as _table_type(mapping, offset)
    _gen_cell: _core.Cell
    _lock: RLock
    _table_seg: Segment
    _fresh: bool  # built by __new__, whose __init__ call is still to come

    @classmethod
    def _open_root(cls, name: str | None, first: Plan, mode: int) -> tuple[Any, bool]:
        """Create the root, or attach it when name exists.  A new root is published
        only after its first table (built by first: size and init) exists, so no
        process ever sees a root without a table."""
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
    def _from_segment(cls, seg: Segment) -> Any:
        if not isinstance(seg.params.get("token"), str):
            raise CorruptSegmentError(f"segment {seg.name!r} has a damaged header (no token)")
        self = _core.Generation.__new__(cls)
        self._seg = seg
        self._lock = RLock._at(seg, seg.data_offset)
        self._gen_cell = _core.Cell(seg.mapping, seg.data_offset + _GEN, "Q")
        self._watch(seg.mapping, seg.data_offset + _GEN)
        self._gen = 0
        self._fresh = False
        _holds.join(seg)
        self._follow(self._gen_cell.load())
        return self

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        return cls._from_segment(Segment.attach(name, cls._kind))

    def _constructing(self) -> bool:
        """True once, in the __init__ call that follows construction by __new__ (which
        already applied the arguments); False when __init__ is called again."""
        fresh, self._fresh = self._fresh, False
        return fresh

    @classmethod
    def _after_unlink(cls, seg: Segment) -> None:
        """The root's name was removed: its tables go once no process uses them."""
        if not _in_use(seg):
            _remove_tables(seg)

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
        root = self._seg
        while True:
            try:
                seg = Segment.attach(_table_name(root, gen), self._table_kind, mode=root.mode)
            except NotFoundError:
                newer = self._gen_cell.load()
                if newer == gen:
                    raise CorruptSegmentError(
                        f"{root.name!r} lost its table (generation {gen})"
                    ) from None
                gen = newer  # replaced again meanwhile: follow the newer one
                continue
            if not _owned_by(seg, root.name, root.params["token"]):
                raise CorruptSegmentError(f"{seg.name!r} is not a table of {root.name!r}")
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
        root = self._seg
        token: str = root.params["token"]
        old = self._gen_cell.load()
        seg = _create_table(root.name, token, old + 1, self._table_kind, size, init, root.mode)
        self._gen_cell.store(old + 1)  # publish
        # Drop the old table, and the one before it in case a writer died before dropping it.
        if self._gen == old:
            with contextlib.suppress(NotFoundError):
                self._table_seg.unlink()
        else:
            _remove_table(_table_name(root, old), root.name, token, root.mode)
        if old > 1:
            _remove_table(_table_name(root, old - 1), root.name, token, root.mode)
        self._table_seg, self._gen = seg, old + 1
        self._table = type(self)._table_type(seg.mapping, seg.data_offset)
        return self._table


#: How to build a table: its size in bytes, and init(mapping, offset) to fill it.
Plan = tuple[int, Callable[[_core.Mapping, int], None]]


def _table_name(root: Segment, gen: int) -> str:
    return _names.table(root.name, root.params["token"], gen)


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
    token: str = root.params["token"]
    gen = int(_core.Cell(root.mapping, root.data_offset + _GEN, "Q").load())
    for g in range(max(1, gen - 1), gen + 2):
        _remove_table(_table_name(root, g), root.name, token, root.mode)


def _users(root: Segment) -> _core.CellArray:
    users: _core.CellArray = _core.CellArray(root.mapping, root.data_offset + _USERS, "I", USERS)
    return users


def _overflow(root: Segment) -> _core.Cell:
    cell: _core.Cell = _core.Cell(root.mapping, root.data_offset + _OVERFLOW, "I")
    return cell


def _in_use(root: Segment) -> bool:
    """Whether a live process holds a handle of root."""
    if _overflow(root).load():
        return True
    return any(pid and _core.pid_alive(pid) for pid in _users(root)[:])


class _Hold:
    """This process's place in one root's users table, and its handles of that root."""

    __slots__ = ("handles", "pid", "root", "slot")

    def __init__(self, root: Segment) -> None:
        self.root, self.handles = root, 0
        self.join()

    def join(self) -> None:
        """Take a slot for this process (a free one, or a dead process's), or count it
        in the overflow word when every slot is taken."""
        self.pid = os.getpid()
        users = _users(self.root)
        for i, pid in enumerate(users[:]):
            if (not pid or not _core.pid_alive(pid)) and users.compare_exchange(i, pid, self.pid):
                self.slot = i
                return
        self.slot = -1
        _overflow(self.root).add(1)

    def leave(self) -> None:
        if self.pid != os.getpid():
            return
        self.pid = 0
        if self.slot >= 0:
            _users(self.root).compare_exchange(self.slot, os.getpid(), 0)
        else:
            _overflow(self.root).sub(1)
        # Leave, then read the flag; unlink() sets the flag, then looks for users:
        # whichever comes second sees both and removes the tables.
        if self.root.flags().load() & FLAG_UNLINKED and not _in_use(self.root):
            _remove_tables(self.root)


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
        self.held: dict[tuple[str, int], _Hold] = {}
        os.register_at_fork(after_in_child=self.forked)
        at_exit.add(self.release_all)

    def join(self, root: Segment) -> None:
        key = (root.name, root.inode)
        hold = self.held.get(key)
        if hold is None or hold.pid != os.getpid():
            hold = self.held[key] = _Hold(root.twin())
        hold.handles += 1
        weakref.finalize(root, self.drop, key, hold).atexit = False

    def drop(self, key: tuple[str, int], hold: _Hold) -> None:
        hold.handles -= 1
        if hold.handles == 0 and self.held.get(key) is hold:
            del self.held[key]
            hold.leave()

    def forked(self) -> None:
        for hold in self.held.values():
            hold.join()

    def release_all(self) -> None:
        while self.held:
            self.held.popitem()[1].leave()


_holds = _Holds()


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
    if root is not None and root.params.get("token") == token:
        current = int(_core.Cell(root.mapping, root.data_offset + _GEN, "Q").load())
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
