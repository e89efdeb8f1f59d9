"""Named shared-memory segments: a fixed header in front of each object's data.

A segment is created exclusively (O_EXCL, mode 0600) and published by one
atomic store of its state word once the header and initial contents are
written, so a process attaching at the same moment waits for a complete
object and never sees a half-built one.  Attaching checks magic, layout
version, checksum, kind and sizes before any pointer into the data is made.

Lifetimes: a named segment lives until unlink().  An anonymous segment is
unlinked by the process that created it: at garbage collection if its handle
never left the process (never pickled), else when that process exits normally,
after multiprocessing has joined its children.  multiprocessing's resource
tracker is never involved.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import struct
import time
import weakref
import zlib
from collections.abc import Callable
from multiprocessing import util
from typing import Any

from . import _core, _names
from ._errors import CorruptSegmentError, KindError, NotFoundError, VersionError

MAGIC = b"PROCSHR\x00"
LAYOUT_VERSION = 1
HEADER_SIZE = 256
PAGE = os.sysconf("SC_PAGE_SIZE")

# magic, version, kind, header size, params length, data offset, data size,
# creator pid, creator start time; then params (JSON) up to _PARAMS_END.
_FIXED = struct.Struct("<8sIIIIQQIxxxxQ")
_PARAMS_END = 240
_CHECKSUM = 240  # crc32 of bytes [0, _CHECKSUM)
_FLAGS = 248  # u32, FLAG_* bits, changed after publication
_STATE = 252  # u32, _STATE_READY once complete

_STATE_INIT, _STATE_READY = 0, 1
FLAG_ESCAPED = 1  # a handle was pickled: another process may attach by name

_ATTACH_WAIT = 5.0  # seconds to wait for a segment that is being created


class Kind(enum.IntEnum):
    """What a segment holds."""

    VALUE = 1
    ARRAY = 2
    COUNTER = 3
    LOCK = 4
    RLOCK = 5
    SEMAPHORE = 6
    BOUNDED_SEMAPHORE = 7
    CONDITION = 8
    EVENT = 9
    BARRIER = 10
    QUEUE = 11
    SIMPLE_QUEUE = 12
    JOINABLE_QUEUE = 13
    DICT = 14
    DICT_TABLE = 15
    LIST = 16
    LIST_TABLE = 17


def start_time(pid: int) -> int:
    """Start time of pid in clock ticks since boot (field 22 of /proc/pid/stat), 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


class Segment:
    """One mapped segment: its name, kind, creation parameters and data range."""

    __slots__ = ("__weakref__", "data_offset", "data_size", "kind", "mapping", "name", "params")

    def __init__(
        self,
        name: str,
        kind: Kind,
        mapping: _core.Mapping,
        params: dict[str, Any],
        data_offset: int,
        data_size: int,
    ) -> None:
        self.name = name
        self.kind = kind
        self.mapping = mapping
        self.params = params
        self.data_offset = data_offset
        self.data_size = data_size

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
        fresh_name: str | None = None,
    ) -> tuple[Segment, bool]:
        """Create the segment, or attach it when name already exists.

        init(mapping, data_offset) writes the initial contents of a new
        segment; if it raises, the segment is removed and nothing changes.
        Without a name the segment is anonymous, named fresh_name if given
        (from names.anonymous()).  Returns the segment and whether it was created.
        """
        if name is None:
            seg = cls.create(fresh_name or _names.anonymous(), kind, params, data_size, init)
            _lifetimes.adopt(seg)
            return seg, True
        try:
            return cls.create(_names.validate(name), kind, params, data_size, init), True
        except FileExistsError:
            return cls.attach(name, kind), False

    @classmethod
    def create(
        cls,
        name: str,
        kind: Kind,
        params: dict[str, Any],
        data_size: int,
        init: Callable[[_core.Mapping, int], None],
    ) -> Segment:
        """Create the segment name exclusively (FileExistsError if it exists)."""
        blob = json.dumps(params, separators=(",", ":"), sort_keys=True).encode()
        if _FIXED.size + len(blob) > _PARAMS_END:
            raise ValueError("object parameters are too long")
        path = _names.shm_path(name)
        fd = _core.shm_open(path, True, 0o600)
        try:
            size = -(-(HEADER_SIZE + data_size) // PAGE) * PAGE
            os.ftruncate(fd, size)
            mapping = _core.Mapping(fd, size)
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
        return cls(name, kind, mapping, params, HEADER_SIZE, data_size)

    @classmethod
    def attach(cls, name: str, kind: Kind | None = None, wait: float | None = None) -> Segment:
        """Map the existing segment name, checking its header (and kind, if given).

        A segment still being created is waited for, up to wait seconds.
        """
        path = _names.shm_path(name)
        try:
            fd = _core.shm_open(path, False, 0)
        except FileNotFoundError:
            raise NotFoundError(f"no procshare object named {name!r}") from None
        try:
            deadline = time.monotonic() + (_ATTACH_WAIT if wait is None else wait)
            while (size := os.fstat(fd).st_size) < HEADER_SIZE:
                _wait_for_creator(name, deadline)
            mapping = _core.Mapping(fd, size)
        finally:
            os.close(fd)
        state = _core.Cell(mapping, _STATE, "I")
        while (st := state.load()) != _STATE_READY:
            if st != _STATE_INIT:
                raise CorruptSegmentError(f"segment {name!r} has a damaged header (state {st})")
            _wait_for_creator(name, deadline)
        return cls._from_header(name, mapping, size, kind)

    @classmethod
    def _from_header(
        cls, name: str, mapping: _core.Mapping, size: int, want: Kind | None
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
        except ValueError:
            raise CorruptSegmentError(f"segment {name!r} has a damaged header") from None
        if want is not None and real_kind != want:
            raise KindError(f"{name!r} holds a {real_kind.name.lower()}, not a {want.name.lower()}")
        return cls(name, real_kind, mapping, params, data_offset, data_size)

    # -- handles and removal ----------------------------------------------

    def handle(self) -> str:
        """The name to pickle; from now on other processes may attach it."""
        _core.Cell(self.mapping, _FLAGS, "I").fetch_or(FLAG_ESCAPED)
        return self.name

    def unlink(self) -> None:
        """Remove the name: no new process can attach, mapped ones keep working."""
        _core.shm_unlink(_names.shm_path(self.name))
        _lifetimes.forget(self.name)
        _unlink_companions(self.name)

    def creator(self) -> tuple[int, int]:
        """The creating process: (pid, start time), from the header."""
        view = memoryview(self.mapping)
        try:
            values = _FIXED.unpack_from(view)
        finally:
            view.release()
        return int(values[7]), int(values[8])


def _wait_for_creator(name: str, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise CorruptSegmentError(
            f"segment {name!r} was never completed (its creator may have died while "
            "creating it); remove it with `procshare rm`"
        )
    time.sleep(0.001)


class _Lifetimes:
    """Anonymous segments this process created and must unlink."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.pid = -1  # the process whose exit hook is registered
        os.register_at_fork(after_in_child=self.pending.clear)

    def adopt(self, seg: Segment) -> None:
        """Unlink seg when this process is done with it (see the module docstring)."""
        pid = os.getpid()
        if self.pid != pid:
            # Run after multiprocessing has joined this process's children.
            util.Finalize(None, self.unlink_all, exitpriority=-100)
            self.pid = pid
        self.pending.add(seg.name)
        fin = weakref.finalize(seg, self.collected, seg.name, seg.mapping, pid)
        fin.atexit = False

    def collected(self, name: str, mapping: _core.Mapping, pid: int) -> None:
        """The creator dropped its last reference: unlink unless the handle escaped."""
        if os.getpid() != pid or name not in self.pending:
            return
        if _core.Cell(mapping, _FLAGS, "I").load() & FLAG_ESCAPED:
            return
        self.forget(name)
        self.unlink(name)

    def forget(self, name: str) -> None:
        self.pending.discard(name)

    def unlink_all(self) -> None:
        while self.pending:
            self.unlink(self.pending.pop())

    def unlink(self, name: str) -> None:
        """Unlink name and whatever its object keeps in further segments."""
        _unlink_quietly(name)
        _unlink_companions(name)


#: For objects spread over several segments (Dict's tables): the root's name ->
#: a function naming the other segments to unlink along with it.
companions: dict[str, Callable[[], list[str]]] = {}


def _unlink_companions(name: str) -> None:
    for companion in companions.pop(name, list)():
        _unlink_quietly(companion)


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _core.shm_unlink(_names.shm_path(name))


_lifetimes = _Lifetimes()
