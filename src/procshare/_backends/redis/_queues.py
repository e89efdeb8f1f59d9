"""Queue, SimpleQueue, JoinableQueue on Redis: a list, delivered at least once.

Messages are encoded as Dict and List values are (_base.encode) and pushed on
the list ``procshare:{N}:q``.  A consumer takes a message by moving it, in one
step, onto its own processing list; it stays there until the consumer's next
get (or task_done, or the consumer's normal exit), which acknowledges it.  Each
consumer holds a lease key renewed by its gets; a get that finds a consumer
whose lease lapsed (it was killed, or its machine was lost) first moves that
consumer's unacknowledged messages back to the head of the queue.  So a
message is delivered at least once: exactly once unless its consumer died
between taking and acknowledging it, when another consumer gets it again.

A get is one Lua call (acknowledge, renew, recover, take); a queue found empty
is then waited on with BLMOVE in slices, so Ctrl-C and the socket timeout are
honoured.  put_many and get_many move a whole batch in one round trip.
"""

from __future__ import annotations

import os
import queue
import socket
import time
import uuid
import weakref
from typing import Any

from ..._data.queue import shard_count
from ._base import RedisObject, decode_many, encode_many, register, wait_until

LEASE = 60.0  # seconds a consumer may go without a get before its messages are redelivered

#: KEYS q, processing, lease, consumers, unfinished; ARGV me, lease ms, n, processing
#: prefix, lease prefix, acknowledge count.  Up to n messages taken (a list).
_GET = """
if tonumber(ARGV[6]) > 0 then redis.call('LTRIM', KEYS[2], ARGV[6], -1) end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
for _, c in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if c ~= ARGV[1] and redis.call('EXISTS', ARGV[5] .. c) == 0 then
    while redis.call('LMOVE', ARGV[4] .. c, KEYS[1], 'RIGHT', 'LEFT') do end
    redis.call('SREM', KEYS[4], c)
  end
end
local got = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
if #got > 0 then
  redis.call('LTRIM', KEYS[1], #got, -1)
  for s = 1, #got, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(got, s, math.min(s + 999, #got)))
  end
end
return got
"""
#: KEYS q, unfinished; ARGV maxsize (0: none), joinable (0/1), messages...  1 put, 0 full.
_PUT = """
local n = #ARGV - 2
if tonumber(ARGV[1]) > 0 and redis.call('LLEN', KEYS[1]) + n > tonumber(ARGV[1]) then
  return 0
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == '1' then redis.call('INCRBY', KEYS[2], n) end
return 1
"""
#: KEYS processing, unfinished; ARGV channel.  The unfinished count, or -1 if none were.
_TASK_DONE = """
local left = tonumber(redis.call('GET', KEYS[2]) or '0')
if left <= 0 then return -1 end
redis.call('LPOP', KEYS[1])
left = redis.call('DECR', KEYS[2])
if left == 0 then redis.call('PUBLISH', ARGV[1], '1') end
return left
"""


@register
class Queue(RedisObject):
    """``Queue(maxsize=0, *, name=None, lease=60, shards=None)`` on Redis; see the module
    for the delivery guarantee (a consumer silent for ``lease`` seconds is presumed dead
    and its unacknowledged messages go back to the queue).  multiprocessing's interface,
    plus put_many and get_many.  ``shards`` is accepted for code written for shared
    memory: a Redis list keeps one order for all producers, as ``shards=1`` does there."""

    kind = "queue"
    parts = ("q", "consumers", "unfinished", "wake")

    def __init__(
        self,
        maxsize: int = 0,
        *,
        name: str | None = None,
        lease: float = LEASE,
        shards: int | None = None,
    ) -> None:
        if not isinstance(maxsize, int):
            raise TypeError("maxsize must be an int")
        shard_count(maxsize, shards)  # the arguments shared memory takes, checked alike
        if not 0.1 <= lease <= 86400:
            raise ValueError("lease must be 0.1 s to a day")
        fields = {"maxsize": str(max(0, maxsize)), "lease": str(lease)}
        self._restore(self._open(name, fields) or fields)

    def _restore(self, fields: dict[str, str]) -> None:
        self._maxsize = int(fields["maxsize"])
        self._lease = float(fields["lease"])
        self._me = ""
        self._taken = 0  # messages on this consumer's processing list, not yet acknowledged

    def _consumer(self) -> str:
        if not self._me or not self._me.startswith(f"{socket.gethostname()}.{os.getpid()}."):
            self._me = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            self._taken = 0
            weakref.finalize(
                self,
                _acknowledge,
                os.getpid(),
                self._conn,
                self.part("p:" + self._me),
                self.part("c:" + self._me),
            )
        return self._me

    def _take(self, n: int, ack: int) -> list[bytes]:
        me = self._consumer()
        with self._conn.errors():
            got: list[bytes] = self._conn.script(_GET)(
                keys=[
                    self.part("q"),
                    self.part("p:" + me),
                    self.part("c:" + me),
                    self.part("consumers"),
                    self.part("unfinished"),
                ],
                args=[me, int(self._lease * 1000), n, self.part("p:"), self.part("c:"), ack],
            )
        return got

    def _acknowledged(self) -> int:
        """How many taken messages a get acknowledges (a JoinableQueue's wait for task_done)."""
        return self._taken

    def get_many(
        self, max_messages: int = 2**31, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Up to max_messages at once (at least one, waiting as get does)."""
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        ack = self._acknowledged()
        got = self._take(max_messages, ack)
        self._taken -= ack
        if not got and block:
            got = self._wait(timeout)
        if not got:
            raise queue.Empty
        self._taken += len(got)
        if self._maxsize:
            self._notify()
        return decode_many(got)

    def _wait(self, timeout: float | None) -> list[bytes]:
        """Block on the queue with BLMOVE, in slices; [] at the timeout."""
        conn = self._conn
        deadline = None if timeout is None else time.monotonic() + timeout
        me = self._consumer()
        while True:
            left = min(conn.location.timeout / 2, self._lease / 3)  # renewed between slices
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
                if left <= 0:
                    return []
            with conn.errors():
                m = conn.client.blmove(
                    self.part("q"), self.part("p:" + me), max(left, 0.01), "LEFT", "RIGHT"
                )
            if m is not None:
                return [m]
            got = self._take(1, 0)  # renew the lease; recover from dead consumers
            if got:
                return got

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.get_many(1, block, timeout)[0]

    def get_nowait(self) -> Any:
        return self.get(False)

    def put_many(self, items: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put every item, in order, in one step (all or, when full, none)."""
        messages = encode_many(items)
        if not messages:
            return
        if self._maxsize and len(messages) > self._maxsize:
            raise ValueError(f"{len(messages)} messages never fit a queue of {self._maxsize}")
        joinable = isinstance(self, JoinableQueue)
        if not self._maxsize and not joinable:  # nothing to check: one RPUSH
            with self._conn.errors():
                self._conn.client.rpush(self.part("q"), *messages)
            return
        keys = [self.part("q"), self.part("unfinished")]
        args = [self._maxsize, int(joinable), *messages]

        def put() -> bool | None:
            with self._conn.errors():
                return True if self._conn.script(_PUT)(keys=keys, args=args) else None

        wait = None if (block and timeout is None) else (timeout if block else 0)
        if not wait_until(self, put, wait):
            raise queue.Full

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_many([obj], block, timeout)

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def qsize(self) -> int:
        with self._conn.errors():
            return int(self._conn.client.llen(self.part("q")))

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return bool(self._maxsize) and self.qsize() >= self._maxsize

    def close(self) -> None:
        """Nothing to flush: a put has returned when its message is on the server."""

    def join_thread(self) -> None:
        """No feeder thread to join."""

    def cancel_join_thread(self) -> None:
        """No feeder thread to cancel."""


def _acknowledge(pid: int, conn: Any, processing: str, lease: str) -> None:
    """At a consumer's normal end (in its own process, not a fork's): its taken messages
    are done; its lease is dropped."""
    if pid != os.getpid():
        return
    try:
        with conn.errors():
            conn.client.delete(processing, lease)
    except Exception:  # the server is gone: the lease lapses and recovery decides
        pass


@register
class SimpleQueue(Queue):
    """``SimpleQueue(*, name=None, lease=60, shards=None)`` on Redis: an unbounded Queue."""

    kind = "simple_queue"

    def __init__(
        self, *, name: str | None = None, lease: float = LEASE, shards: int | None = None
    ) -> None:
        super().__init__(0, name=name, lease=lease, shards=shards)


@register
class JoinableQueue(Queue):
    """``JoinableQueue(maxsize=0, *, name=None)`` on Redis: task_done acknowledges a taken
    message; join waits until every message put was done."""

    kind = "joinable_queue"

    def _acknowledged(self) -> int:
        return 0  # messages stay taken until task_done

    def task_done(self) -> None:
        with self._conn.errors():
            left = self._conn.script(_TASK_DONE)(
                keys=[self.part("p:" + self._consumer()), self.part("unfinished")],
                args=[self._channel()],
            )
        if left < 0:
            raise ValueError("task_done() called too many times")
        self._taken = max(0, self._taken - 1)

    def join(self, timeout: float | None = None) -> bool:
        def done() -> bool | None:
            with self._conn.errors():
                return (
                    True if int(self._conn.client.get(self.part("unfinished")) or 0) <= 0 else None
                )

        return bool(wait_until(self, done, timeout))
