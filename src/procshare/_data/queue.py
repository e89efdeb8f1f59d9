"""Queue, SimpleQueue, JoinableQueue: message rings in shared memory.

Messages are stored as procshare._shm.codec describes: ``bytes``, ``str`` and
64-bit ints as they are, anything else pickled (encoded and decoded in C).
A queue is one or more shards, each a ring with a robust lock for its
producers and one for its consumers.  Every put and get is one call into C
that takes one of them, copies the message in or out and publishes it with
one store, so a producer or consumer killed at any point leaves the shard
whole: each message is delivered once, whole, or not at all.  Each producer
process puts into a shard of its own (its messages stay in order) and
getters take from whichever shard has a message and a free lock, so added
producers and consumers spread over the locks.  Blocking puts and gets spin
briefly, then sleep on futex words; wake-ups cost a syscall only when
someone sleeps.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterable
from typing import Any, ClassVar

from .. import _core
from .._shm.names import Kind
from .._shm.segment import Segment, check_attach
from .._sync import parking as _parking
from .._sync.base import SyncObject
from .._sync.parking import Waiting

#: Bytes of message buffer a shard gets unless capacity= says otherwise.
DEFAULT_CAPACITY = 1 << 20

#: Shards of a queue without maxsize unless shards= says otherwise: one producer per core
#: has a lock of its own.
DEFAULT_SHARDS = min(os.cpu_count() or 1, 16)


def shard_count(maxsize: int, shards: int | None) -> int:
    """The shards of a queue asked for with these arguments (None: the default), or
    TypeError / ValueError.  A maxsize counts every message in one place: one shard."""
    if shards is None:
        return 1 if maxsize > 0 else DEFAULT_SHARDS
    if not isinstance(shards, int) or isinstance(shards, bool):
        raise TypeError(f"shards must be an int, not {type(shards).__name__}")
    if not 1 <= shards <= _core.RING_MAX_SHARDS:
        raise ValueError(f"shards must be 1 to {_core.RING_MAX_SHARDS}, not {shards}")
    if shards > 1 and maxsize > 0:
        raise ValueError("a queue with a maxsize has one shard (it counts every message)")
    return shards


class Queue(SyncObject, _core.Ring):
    """``Queue(maxsize=0, *, name=None, capacity=1 MiB, shards=None)``:
    multiprocessing.Queue's API.

    Bounded by ``maxsize`` messages (0 or less: no limit) and by ``capacity``
    bytes of buffer in each shard; a message larger than a shard's buffer
    raises ValueError at put and changes nothing.  ``shards``: rings with a
    lock each, one per core up to 16 by default, and 1 with a maxsize (which
    counts all messages in one place) or when every message must keep one
    order across producers; a shard's memory is taken when a producer first
    uses it.  Messages from one producer process are taken in the order put.
    Extras: ``put_many``, ``get_many``, ``put_async``, ``get_async``,
    ``name=``.
    """

    # put and get are the core's (one C call each); the closed flag, and the check every
    # put and get entry point makes, live there too.
    __slots__ = ("_offset", "_seg")
    _kind: ClassVar[Kind] = Kind.QUEUE

    def __new__(
        cls,
        maxsize: int = 0,
        *,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        shards: int | None = None,
        mode: int = 0o600,
    ) -> Any:
        return cls._open(maxsize, name, capacity, shards, mode)

    @classmethod
    def _open(
        cls, maxsize: int, name: str | None, capacity: int, shards: int | None, mode: int
    ) -> Any:
        for arg, value in (("maxsize", maxsize), ("capacity", capacity)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{arg} must be an int, not {type(value).__name__}")
        if capacity < 64:
            raise ValueError(f"capacity must be at least 64 bytes, not {capacity}")
        capacity = -(-capacity // 8) * 8
        maxsize = max(0, maxsize)
        count = shard_count(maxsize, shards)
        params = {"maxsize": maxsize, "capacity": capacity, "shards": count}

        def init(mapping: _core.Mapping, offset: int) -> None:
            _core.Ring.init(mapping, offset, capacity, maxsize, count)

        head = _core.RING_HEADER + count * _core.RING_SHARD
        seg, created = Segment.open(
            name, cls._kind, params, head + count * capacity, init, mode=mode,
            backed=head + capacity,
        )  # fmt: skip
        if not created:
            asked = {**params, "shards": shards}
            check_attach(seg, asked, {"maxsize": 0, "capacity": DEFAULT_CAPACITY, "shards": None})
        return cls._at(seg, seg.data_offset)

    @classmethod
    def _attach(cls, name: str, *args: Any) -> Any:
        seg = Segment.attach(name, cls._kind)
        return cls._at(seg, seg.data_offset)

    @classmethod
    def _at(cls, seg: Segment, offset: int) -> Any:
        self = _core.Ring.__new__(cls, seg.mapping, offset)
        self._seg, self._offset = seg, offset
        return self

    def _handle_args(self) -> tuple[Any, ...]:
        return ()

    # -- putting --------------------------------------------------------------

    def put_nowait(self, obj: object) -> None:
        self.put(obj, False)

    def put_many(
        self, objs: Iterable[object], block: bool = True, timeout: float | None = None
    ) -> None:
        """Add every object in order, taking the lock once per batch that fits.

        Everything is encoded first, so an unpicklable object raises before
        any is put.  queue.Full (after timeout) says how many were put.
        """
        items = list(objs)
        done = self._put_many(items, block, timeout)
        if done < len(items):
            raise queue.Full(f"{done} of {len(items)} messages were put")

    # -- getting --------------------------------------------------------------

    def get_nowait(self) -> Any:
        return self.get(False)

    def get_many(
        self, max_messages: int = 1_000, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Remove and return up to max_messages (at least one; queue.Empty after timeout)."""
        items = self._get_many(max_messages, block, timeout)
        if not items:
            raise queue.Empty
        return items

    # -- asyncio --------------------------------------------------------------

    def _put_steps(self, obj: object, timeout: float | None) -> Waiting[None]:
        if not (yield from self._putting(obj, timeout)):
            raise queue.Full

    def _get_steps(self, timeout: float | None) -> Waiting[Any]:
        return (yield from self._getting(timeout))  # queue.Empty at the deadline

    async def put_async(self, obj: object, timeout: float | None = None) -> None:
        """put() without blocking the event loop."""
        await _parking.run_async(self._put_steps(obj, timeout))

    async def get_async(self, timeout: float | None = None) -> Any:
        """get() without blocking the event loop."""
        return await _parking.run_async(self._get_steps(timeout))

    # -- state ----------------------------------------------------------------

    def qsize(self) -> int:
        """Messages in the queue now: with a maxsize a count kept exact; without one,
        counted in the shards without stopping anyone (exact unless messages move
        meanwhile)."""
        return int(self._stats()[0])

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        maxsize = self._seg.params["maxsize"]
        return bool(maxsize) and self.qsize() >= maxsize

    def close(self) -> None:
        """This handle can no longer put or get; the queue itself lives on."""
        self._closed = True

    def join_thread(self) -> None:
        """No feeder thread exists: nothing to join (multiprocessing compatibility)."""

    def cancel_join_thread(self) -> None:
        """No feeder thread exists: nothing to cancel (multiprocessing compatibility)."""

    def __repr__(self) -> str:
        count, used, capacity, *_, shards = self._stats()
        return (
            f"<procshare.{type(self).__name__} {self._seg.name!r} messages={count} "
            f"bytes={used}/{capacity * shards} shards={shards}>"
        )


class SimpleQueue(Queue):
    """``SimpleQueue(*, name=None, capacity=1 MiB, shards=None)``:
    multiprocessing.SimpleQueue's API (put, get, empty, close), unbounded in messages."""

    __slots__ = ()
    _kind = Kind.SIMPLE_QUEUE

    def __new__(
        cls,
        *,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        shards: int | None = None,
        mode: int = 0o600,
    ) -> Any:
        return cls._open(0, name, capacity, shards, mode)


class JoinableQueue(Queue):
    """``JoinableQueue(maxsize=0, *, name=None, capacity=1 MiB, shards=None)``: a Queue with
    ``task_done()`` and ``join()``, as multiprocessing's.

    A producer killed inside put() may leave one task counted that no
    consumer will finish; ``join(timeout)`` lets callers bound the wait.
    """

    __slots__ = ()
    _kind = Kind.JOINABLE_QUEUE

    def put(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        self._add_unfinished(1)
        try:
            super().put(obj, block, timeout)
        except BaseException:
            self._add_unfinished(-1)
            raise

    def put_many(
        self, objs: Iterable[object], block: bool = True, timeout: float | None = None
    ) -> None:
        items = list(objs)
        self._add_unfinished(len(items))
        done = 0
        try:
            done = self._put_many(items, block, timeout)
        finally:
            if done < len(items):
                self._add_unfinished(done - len(items))
        if done < len(items):
            raise queue.Full(f"{done} of {len(items)} messages were put")

    async def put_async(self, obj: object, timeout: float | None = None) -> None:
        self._add_unfinished(1)
        try:
            await super().put_async(obj, timeout)
        except BaseException:
            self._add_unfinished(-1)
            raise

    def task_done(self) -> None:
        """One message taken earlier is fully processed; ValueError if called too often."""
        self._add_unfinished(-1)

    def join(self, timeout: float | None = None) -> bool:
        """Block until every message put has been task_done() (False after timeout)."""
        return bool(self._join_wait(timeout))
