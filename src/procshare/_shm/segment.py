"""Named segments: a fixed header in front of each object's data.

A segment is created exclusively (O_EXCL, mode 0600 unless the creator chose
to share it), its memory is reserved at once (so a full /dev/shm raises
SpaceError here instead of SIGBUS later), and it is published by one atomic
store of its state word once the header and initial contents are written: a
process attaching at the same moment waits for a complete object.

Attaching trusts nothing it did not check: the opened descriptor must belong
to this user and grant nothing to group or others beyond the caller's
``mode=`` (a segment is data whoever could write it chose, pickles included),
then the header's magic, layout version, checksum, kind and sizes are checked
before any pointer into the data is made.

Lifetimes: a named segment lives until unlink().  An anonymous segment is
unlinked by the process that created it: when it drops its last reference if
the object was never shared (never pickled, no child forked since), else when
that process exits normally, after multiprocessing has joined its children.
multiprocessing's resource tracker is never involved.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import stat
import struct
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from multiprocessing import util
from typing import Any

from .. import _core
from .._errors import (
    CorruptSegmentError,
    KindError,
    NotFoundError,
    SpaceError,
    UntrustedSegmentError,
    VersionError,
)
from . import names as _names
from .names import Kind

MAGIC = b"PROCSHR\x00"
LAYOUT_VERSION = 8  # 8: an arena's count of backed slots before its slots
HEADER_SIZE = 256
PAGE = os.sysconf("SC_PAGE_SIZE")

#: Permission bits of a segment nobody chose to share.
DEFAULT_MODE = 0o600

# magic, version, kind, header size, params length, data offset, data size,
# creator pid, creator start time; then params (JSON) up to _PARAMS_END.
_FIXED = struct.Struct("<8sIIIIQQIxxxxQ")
_PARAMS_END = 240
_CHECKSUM = 240  # crc32 of bytes [0, _CHECKSUM)
FLAGS_AT = 248  # u32, FLAG_* bits, changed after publication
_STATE = 252  # u32, _STATE_READY once complete

_STATE_INIT, _STATE_READY = 0, 1
#: A handle was pickled or a child forked: another process may use the name.
FLAG_ESCAPED = _core.FLAG_ESCAPED
#: The name was removed; the last process holding the object cleans up.
FLAG_UNLINKED = _core.FLAG_UNLINKED

_ATTACH_WAIT = 5.0  # seconds to wait for a segment that is being created


def check_mode(mode: object) -> int:
    """mode if it is a valid permission set for a segment, else TypeError or ValueError."""
    if not isinstance(mode, int) or isinstance(mode, bool):
        raise TypeError(f"mode must be an int such as 0o600, not {type(mode).__name__}")
    if mode & ~0o666 or mode & 0o600 != 0o600:
        raise ValueError(
            f"mode must give its owner read and write (0o600) and nothing but read and "
            f"write bits, not {mode:#o}"
        )
    return mode


#: The mode a handle being unpickled was created with (see accepting()).
_accepted: contextvars.ContextVar[int] = contextvars.ContextVar("accepted", default=DEFAULT_MODE)


def accepted() -> int:
    """The mode attaching accepts here (see accepting())."""
    return _accepted.get()


@contextlib.contextmanager
def accepting(mode: int) -> Iterator[None]:
    """Attach segments shared as mode (by default: owner only) inside the block."""
    token = _accepted.set(mode)
    try:
        yield
    finally:
        _accepted.reset(token)


def check_attach(seg: Segment, asked: dict[str, Any], defaults: dict[str, Any]) -> None:
    """KindError if an argument the caller gave (one not at its default) contradicts the
    parameters the attached object was created with."""
    for key, value in asked.items():
        if value != defaults.get(key, object()) and seg.params.get(key) != value:
            raise KindError(
                f"{seg.name!r} exists with {key}={seg.params.get(key)!r}, not {key}={value!r}"
            )


def start_time(pid: int) -> int:
    """Start time of pid in clock ticks since boot (field 22 of /proc/pid/stat), 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:
        return 0
    return int(stat_line[stat_line.rindex(b")") + 2 :].split()[19])


def owner_name(uid: int) -> str:
    """'name (uid)' for a user id, or just the number when it has no name."""
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_trust(name: str, st: os.stat_result, mode: int) -> None:
    """Raise UntrustedSegmentError unless the file st describes belongs to this user and
    grants group and others nothing beyond what mode shares."""
    shared = mode & 0o077
    granted = stat.S_IMODE(st.st_mode)
    if (st.st_uid != os.geteuid() and not shared) or granted & 0o077 & ~shared:
        raise UntrustedSegmentError(
            f"refusing to attach {name!r}: /dev/shm/{_names.PREFIX}{name} belongs to "
            f"{owner_name(st.st_uid)} with mode {granted:#o}; procshare attaches only "
            f"segments of {owner_name(os.geteuid())} closed to group and others, unless "
            "mode= says they are shared"
        )


def _reserve(fd: int, name: str, size: int, backed: int) -> None:
    """Size the new segment, and back its first `backed` bytes with memory now, so that a
    lack of memory raises here (the rest is backed by whoever first uses it)."""
    vfs = os.fstatvfs(fd)
    free = vfs.f_bavail * vfs.f_frsize
    if backed > free:
        raise SpaceError(
            f"cannot make {name!r}: it needs {backed} bytes and /dev/shm has {free} bytes free"
        )
    try:
        os.posix_fallocate(fd, 0, backed)
        if size > backed:
            os.ftruncate(fd, size)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM):
            raise
        raise SpaceError(
            f"cannot make {name!r}: /dev/shm could not reserve its {backed} bytes ({e.strerror})"
        ) from None


class Segment:
    """One mapped segment: its name, kind, creation parameters, data range and mode."""

    __slots__ = ("__weakref__", "data_offset", "data_size", "inode", "kind", "mapping", "mode",
                 "name", "params")  # fmt: skip

    def __init__(
        self,
        name: str,
        kind: Kind,
        mapping: _core.Mapping,
        params: dict[str, Any],
        data_offset: int,
        data_size: int,
        mode: int,
        inode: int,
    ) -> None:
        self.name = name
        self.kind = kind
        self.mapping = mapping
        self.params = params
        self.data_offset = data_offset
        self.data_size = data_size
        self.mode = mode
        self.inode = inode
        _core.untrack(self)  # nothing it holds leads back to it: no cycle to find

    def twin(self) -> Segment:
        """Another Segment object for the same mapping (kept where this one must not be)."""
        return Segment(self.name, self.kind, self.mapping, self.params, self.data_offset,
                       self.data_size, self.mode, self.inode)  # fmt: skip

    # -- creation and attachment ------------------------------------------

    @classmethod
    def open(
        cls,
        name: str | None,
        kind: Kind,
        params: dict[str, Any],
        data_size: int,
        init: Callable[[_core.Mapping, int], None],
        *,
        mode: int = DEFAULT_MODE,
        fresh_name: str | None = None,
        backed: int | None = None,
    ) -> tuple[Segment, bool]:
        """Create the segment, or attach it when name already exists.

        init(mapping, data_offset) writes the initial contents of a new
        segment; if it raises, the segment is removed and nothing changes.
        Without a name the segment is anonymous, named fresh_name if given
        (from names.anonymous()).  (Small anonymous objects take a slot in an
        arena instead: arena.place.)  Only the first `backed` bytes of data are
        backed by memory at once when given (the object backs the rest as it
        uses it).  Returns the segment and whether it was created.
        """
        check_mode(mode)
        if name is None:
            seg = cls.create(
                fresh_name or _names.anonymous(), kind, params, data_size, init, mode, backed
            )
            _lifetimes.adopt(seg)
            return seg, True
        try:
            seg = cls.create(_names.validate(name), kind, params, data_size, init, mode, backed)
            return seg, True
        except FileExistsError:
            return cls.attach(name, kind, mode=mode), False

    @classmethod
    def create(
        cls,
        name: str,
        kind: Kind,
        params: dict[str, Any],
        data_size: int,
        init: Callable[[_core.Mapping, int], None],
        mode: int = DEFAULT_MODE,
        backed: int | None = None,
    ) -> Segment:
        """Create the segment name exclusively (FileExistsError if it exists)."""
        blob = json.dumps(params, separators=(",", ":"), sort_keys=True).encode()
        if _FIXED.size + len(blob) > _PARAMS_END:
            raise ValueError("object parameters are too long")
        path = _names.shm_path(name)
        size = -(-(HEADER_SIZE + data_size) // PAGE) * PAGE
        fd = _core.shm_open(path, True, mode)
        try:
            os.fchmod(fd, mode)  # exactly mode, whatever the umask
            _reserve(fd, name, size, size if backed is None else min(size, HEADER_SIZE + backed))
            inode = os.fstat(fd).st_ino
            mapping = _map(fd, size, name)
        except BaseException:
            _core.shm_unlink(path)
            raise
        finally:
            os.close(fd)
        header = bytearray(_PARAMS_END)
        pid = os.getpid()
        _FIXED.pack_into(
            header, 0, MAGIC, LAYOUT_VERSION, kind, HEADER_SIZE, len(blob),
            HEADER_SIZE, data_size, pid, start_time(pid),
        )  # fmt: skip
        header[_FIXED.size : _FIXED.size + len(blob)] = blob
        view = memoryview(mapping)
        view[:_PARAMS_END] = header
        struct.pack_into("<I", view, _CHECKSUM, zlib.crc32(header))
        view.release()
        try:
            init(mapping, HEADER_SIZE)
        except BaseException:
            _core.shm_unlink(path)
            raise
        _core.Cell(mapping, _STATE, "I").store(_STATE_READY)
        return cls(name, kind, mapping, params, HEADER_SIZE, data_size, mode, inode)

    @classmethod
    def attach(
        cls,
        name: str,
        kind: Kind | None = None,
        wait: float | None = None,
        *,
        mode: int | None = None,
        partial: bool = False,
    ) -> Segment:
        """Map the existing segment name, checking its owner and mode (see accepting()),
        its header, and its kind if given.

        A segment still being created is waited for, up to wait seconds; with
        partial, one whose header is written but whose contents are not is taken as is.
        """
        mode = _accepted.get() if mode is None else mode
        if _arena.is_slot(name):
            return _arena.attach(name, kind, mode)
        path = _names.shm_path(name)
        try:
            fd = _core.shm_open(path, False, 0)
        except FileNotFoundError:
            raise NotFoundError(missing(name)) from None
        try:
            st = os.fstat(fd)
            check_trust(name, st, mode)
            deadline = time.monotonic() + (_ATTACH_WAIT if wait is None else wait)
            while (size := os.fstat(fd).st_size) < HEADER_SIZE:
                _wait_for_creator(name, deadline)
            mapping = _map(fd, size, name)
        finally:
            os.close(fd)
        state = _core.Cell(mapping, _STATE, "I")
        while (st_word := state.load()) != _STATE_READY:
            if st_word != _STATE_INIT:
                raise CorruptSegmentError(
                    f"segment {name!r} has a damaged header (state {st_word})"
                )
            if partial:
                break
            _wait_for_creator(name, deadline)
        return cls._from_header(name, mapping, size, kind, stat.S_IMODE(st.st_mode), st.st_ino)

    def current(self, mode: int) -> bool:
        """Whether the name still names this mapped segment, trusted as attach() trusts
        one with mode (else UntrustedSegmentError): a kept mapping is then as good as a
        new one, without mapping the segment again."""
        try:
            st = os.stat(_names.file_path(self.name))
        except OSError:
            return False  # gone, or not ours to look at: attach says which
        if st.st_ino != self.inode:
            return False
        check_trust(self.name, st, mode)
        return True

    @classmethod
    def _from_header(
        cls,
        name: str,
        mapping: _core.Mapping,
        size: int,
        want: Kind | None,
        mode: int,
        inode: int,
    ) -> Segment:
        view = memoryview(mapping)
        try:
            header = bytes(view[:_PARAMS_END])
            (checksum,) = struct.unpack_from("<I", view, _CHECKSUM)
        finally:
            view.release()
        fields = _FIXED.unpack_from(header)
        magic, version, kind, header_size, plen, data_offset, data_size = fields[:7]
        if magic != MAGIC:
            raise CorruptSegmentError(f"{name!r} is not a procshare segment (bad magic)")
        if zlib.crc32(header) != checksum:
            raise CorruptSegmentError(f"segment {name!r} has a damaged header (bad checksum)")
        if version != LAYOUT_VERSION:
            raise VersionError(
                f"segment {name!r} has layout version {version}; "
                f"this procshare reads version {LAYOUT_VERSION}"
            )
        if (
            header_size != HEADER_SIZE
            or data_offset < HEADER_SIZE
            or data_offset + data_size > size
            or _FIXED.size + plen > _PARAMS_END
        ):
            raise CorruptSegmentError(f"segment {name!r} has a damaged header (bad sizes)")
        try:
            real_kind = Kind(kind)
            params = json.loads(header[_FIXED.size : _FIXED.size + plen])
            if not isinstance(params, dict):
                raise ValueError
        except ValueError:
            raise CorruptSegmentError(f"segment {name!r} has a damaged header") from None
        if want is not None and real_kind != want:
            raise KindError(f"{name!r} holds a {real_kind.name.lower()}, not a {want.name.lower()}")
        return cls(name, real_kind, mapping, params, data_offset, data_size, mode, inode)

    # -- handles and removal ----------------------------------------------

    def flags(self) -> _core.Cell:
        """The header's flag word (FLAG_* bits)."""
        cell: _core.Cell = _core.Cell(self.mapping, FLAGS_AT, "I")
        return cell

    def unlinked(self) -> bool:
        """Whether the name was removed."""
        return bool(self.flags().load() & FLAG_UNLINKED)

    def handle(self) -> str:
        """The name to pickle; from now on other processes may attach it."""
        self.flags().fetch_or(FLAG_ESCAPED)
        return self.name

    def unlink(self) -> None:
        """Remove the name: no new process can attach, mapped ones keep working.

        NotFoundError if the name is gone or now names another object.
        """
        path = _names.shm_path(self.name)
        try:
            fd = _core.shm_open(path, False, 0)
        except FileNotFoundError:
            fd = -1
        else:
            same = os.fstat(fd).st_ino == self.inode
            os.close(fd)
        if fd < 0 or not same:
            raise NotFoundError(f"no procshare object named {self.name!r} any more")
        self.flags().fetch_or(FLAG_UNLINKED)
        _lifetimes.forget(self.name)
        with contextlib.suppress(FileNotFoundError):
            _core.shm_unlink(path)
        if self.kind == Kind.ARENA:
            _arena.after_unlink(self)
        elif (cls := _names.class_of(self.kind)) is not None:
            cls._after_unlink(self)

    def creator(self) -> tuple[int, int]:
        """The creating process: (pid, start time), from the header."""
        view = memoryview(self.mapping)
        try:
            values = _FIXED.unpack_from(view)
        finally:
            view.release()
        return int(values[7]), int(values[8])


def _map(fd: int, size: int, name: str) -> _core.Mapping:
    """Map the segment; out of mappings or address space, a SpaceError that says which."""
    try:
        return _core.Mapping(fd, size)
    except OSError as e:
        if e.errno != errno.ENOMEM:
            raise
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps") as f:
            mapped = sum(1 for _ in f)
        why = (
            f"this process has {mapped} mappings, the most the kernel allows (vm.max_map_count "
            f"is {limit}; small anonymous objects share arenas, named ones take one each)"
            if mapped >= limit - 8
            else f"this process's address space is full ({mapped} mappings; see ulimit -v)"
        )
        raise SpaceError(f"cannot map {name!r} ({size} bytes): {why}") from None


def missing(name: str) -> str:
    """Why attaching name found nothing, saying so when it was an anonymous object whose
    creator has exited (anonymous objects go with the process that made them)."""
    pid = _names.creator_pid(name)
    if pid is None or _core.pid_alive(pid):
        return f"no procshare object named {name!r}"
    return (
        f"no procshare object named {name!r}: it was anonymous, and the process that made "
        f"it (pid {pid}) has exited; anonymous objects go with their creator, give one a "
        "name= to keep it until unlinked"
    )


def _wait_for_creator(name: str, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise CorruptSegmentError(
            f"segment {name!r} was never completed (its creator may have died while "
            "creating it); remove it with `procshare rm`"
        )
    time.sleep(0.001)


class _ExitHooks:
    """Callbacks run when this process exits normally: the main process at interpreter
    exit, multiprocessing's children (which leave through os._exit) when their
    multiprocessing finalizers run, after they joined their own children."""

    def __init__(self) -> None:
        self.hooks: list[Callable[[], None]] = []
        self.pid = 0  # the process whose finalizer is registered
        os.register_at_fork(after_in_child=self.forked)
        # multiprocessing clears its finalizers in a new child after os.fork's hooks ran.
        util.register_after_fork(self, _ExitHooks.forked)

    def add(self, hook: Callable[[], None], *, first: bool = False) -> None:
        """Run hook at exit: after the hooks added before it, or with first before them."""
        self.hooks.insert(0 if first else len(self.hooks), hook)
        self.arm()

    def arm(self) -> None:
        if self.pid != os.getpid():
            util.Finalize(None, self.run, exitpriority=-100)
            self.pid = os.getpid()

    def forked(self) -> None:
        self.pid = 0
        self.arm()

    def run(self) -> None:
        for hook in self.hooks:
            hook()


at_exit = _ExitHooks()


class _Lifetimes:
    """Anonymous segments this process created and must unlink."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[weakref.ref[Segment], int]] = {}  # name -> (seg, mode)
        os.register_at_fork(before=self.forking, after_in_child=self.pending.clear)
        at_exit.add(self.unlink_all)

    def adopt(self, seg: Segment) -> None:
        """Unlink seg when this process is done with it (see the module docstring)."""
        self.pending[seg.name] = (weakref.ref(seg), seg.mode)
        fin = weakref.finalize(seg, self.collected, seg.twin(), os.getpid())
        fin.atexit = False

    def forking(self) -> None:
        """A child is about to inherit every live object: they are shared from now on."""
        for ref, _ in self.pending.values():
            if (seg := ref()) is not None:
                seg.flags().fetch_or(FLAG_ESCAPED)

    def collected(self, seg: Segment, pid: int) -> None:
        """The creator dropped its last reference: unlink unless the object was shared."""
        if os.getpid() != pid or seg.name not in self.pending:
            return
        if seg.flags().load() & FLAG_ESCAPED:
            return
        self.unlink(seg)

    def forget(self, name: str) -> None:
        self.pending.pop(name, None)

    def unlink_all(self) -> None:
        while self.pending:
            name, (ref, mode) = self.pending.popitem()
            seg = ref()
            if seg is None:
                try:
                    seg = Segment.attach(name, wait=0, mode=mode)
                except (NotFoundError, UntrustedSegmentError):
                    continue
                except (CorruptSegmentError, VersionError, KindError):
                    with contextlib.suppress(FileNotFoundError):
                        _core.shm_unlink(_names.shm_path(name))
                    continue
            self.unlink(seg)

    def unlink(self, seg: Segment) -> None:
        with contextlib.suppress(NotFoundError):
            seg.unlink()


_lifetimes = _Lifetimes()


from . import arena as _arena  # noqa: E402  (arena.py builds on Segment)
