"""Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier on Redis.

Locks are leases.  Acquiring is ``SET owner <token> NX PX <lease>`` in Lua, which
also counts a fencing token (``lock.fence``: larger for every grant, for the
resources the lock protects to reject stale holders) and notes whether the
previous holder let its lease lapse without releasing (``owner_died``, as on
shared memory).  While a lock is held, one thread per process renews its
leases every third of the lease, for at most ``max_hold`` seconds.  If a
renewal fails (the lease was lost, or the server did not answer before the
lease could have lapsed), ``lock.lost`` is set and release raises LockLostError:
a holder is never silently one of two.  Release and renewal are Lua steps that
act only for the token that holds the lease.

Waits (acquire, Event.wait, Barrier.wait, Condition.wait) run the one wait loop
of _base: every release, set and arrival publishes on the object's channel.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from ..._errors import LockLostError
from ._base import RedisObject, bound, register, wait_until
from ._connection import Connection

LEASE = 30.0  # seconds a grant lasts without renewal
MAX_HOLD = 3600.0  # seconds a lock is renewed for, at most

#: KEYS owner, fence, held; ARGV token, lease ms.  {fence, died} or nil when held.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local died = redis.call('EXISTS', KEYS[3])
  redis.call('SET', KEYS[3], ARGV[1])
  return {redis.call('INCR', KEYS[2]), died}
end
return false
"""
#: KEYS owner, held; ARGV token, channel.  1 released, 0 not this token's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
"""
#: KEYS owner; ARGV token, lease ms.  1 renewed, 0 lost.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class _Renewer:
    """The thread of this process that renews held leases (started on first need)."""

    def __init__(self) -> None:
        self._held: dict[int, Lock] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._pid = -1
        self._next = 0.0  # when the thread looks at the held leases next
        self._period = 60.0  # how often it looks when none is due

    def hold(self, lock: Lock) -> None:
        with self._guard:
            self._held[id(lock)] = lock
            if self._pid != os.getpid():  # none yet, or the parent's before fork
                self._pid = os.getpid()
                self._next = 0.0
                threading.Thread(
                    target=self._run, name="procshare-lease-renewer", daemon=True
                ).start()
            # The idle thread looks every third of the shortest lease it has seen, so a
            # new grant needs no wake-up unless its lease is shorter still.
            early = lock._renew_at < self._next
            self._period = min(self._period, lock._lease / 3)
        if early:
            self._wake.set()

    def drop(self, lock: Lock) -> None:
        with self._guard:
            self._held.pop(id(lock), None)

    def _run(self) -> None:
        while True:
            with self._guard:
                held = list(self._held.values())
            now = time.monotonic()
            for lock in held:
                if now >= lock._renew_at:
                    lock._renew()
            with self._guard:
                due = (lk._renew_at for lk in self._held.values())
                self._next = min(due, default=time.monotonic() + self._period)
            self._wake.wait(max(0.01, self._next - time.monotonic()))
            self._wake.clear()


_RENEWER = _Renewer()


@register
class Lock(RedisObject):
    """``Lock(*, name=None, lease=30, max_hold=3600)``: a lease lock on Redis.

    ``acquire(block=True, timeout=None)``, ``release()``, ``with``; ``fence`` (the
    grant's fencing token), ``owner_died`` (the previous holder's lease lapsed while
    it held the lock), ``lost`` (this holder's lease may have lapsed: LockLostError
    at release).  A process that dies holding the lock frees it within ``lease``
    seconds.  Only the holding handle's process may release it.
    """

    kind = "lock"
    parts = ("owner", "fence", "held", "wake")

    def __init__(
        self, *, name: str | None = None, lease: float = LEASE, max_hold: float = MAX_HOLD
    ) -> None:
        if not 0.1 <= lease <= 86400 or not lease <= max_hold:
            raise ValueError("lease must be 0.1 s to a day, and max_hold at least the lease")
        found = self._open(name, {"lease": lease, "max_hold": max_hold})
        self._restore(found or {"lease": str(lease), "max_hold": str(max_hold)})

    def _restore(self, fields: dict[str, str]) -> None:
        self._lease = float(fields["lease"])
        self._max_hold = float(fields["max_hold"])
        self._token: str | None = None
        self._holder = (0, 0)  # (pid, thread) of the grant this handle holds
        self.fence = 0
        self.owner_died = False
        self.lost = False
        self._renew_at = self._given_up = 0.0

    def _holds(self) -> bool:
        return self._token is not None and self._holder[0] == os.getpid()

    def _try(self) -> bool | None:
        token = uuid.uuid4().hex
        with self._conn.errors():
            got = self._conn.script(_ACQUIRE)(
                keys=[self.part("owner"), self.part("fence"), self.part("held")],
                args=[token, int(self._lease * 1000)],
            )
        if not got:
            return None
        now = time.monotonic()
        self._token, self._holder = token, (os.getpid(), threading.get_ident())
        self.fence, self.owner_died, self.lost = int(got[0]), bool(got[1]), False
        self._renew_at, self._given_up = now + self._lease / 3, now + self._max_hold
        self._renewed = now  # the grant counts as the first renewal
        _RENEWER.hold(self)
        return True

    def _lease_left(self) -> float:
        """Seconds until the holder's lease lapses (a bound on each sleep of a waiter)."""
        with self._conn.errors():
            ms = self._conn.client.pttl(self.part("owner"))
        return max(0.001, ms / 1000) if ms > 0 else 0.001

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be non-negative")
        wait = None if (block and timeout is None) else (timeout if block else 0)
        return bool(wait_until(self, self._try, wait, self._lease_left))

    def _renew(self) -> None:
        """Called by the renewer: extend the lease, or mark it lost."""
        token = self._token
        if token is None:
            _RENEWER.drop(self)
            return
        now = time.monotonic()
        if now >= self._given_up:  # max_hold reached: the lease is left to lapse
            self._renew_at = float("inf")
            return
        try:
            with self._conn.errors():
                ok = self._conn.script(_RENEW)(
                    keys=[self.part("owner")], args=[token, int(self._lease * 1000)]
                )
        except Exception:
            ok = None
        if ok:
            self._renewed = now
            self._renew_at = now + self._lease / 3
        elif ok == 0 or now - self._renewed >= self._lease:
            self.lost = True  # taken by another, or unreachable for a whole lease
            _RENEWER.drop(self)
        else:
            self._renew_at = now + min(1.0, self._lease / 10)  # unreachable: try again soon

    def release(self) -> None:
        if not self._holds():
            raise ValueError("release of a lock this process does not hold")
        token, self._token = self._token, None
        _RENEWER.drop(self)
        with self._conn.errors():
            done = self._conn.script(_RELEASE)(
                keys=[self.part("owner"), self.part("held")], args=[token, self._channel()]
            )
        if not done or self.lost:
            self.lost = True
            raise LockLostError(
                f"{self!r}: the lease lapsed while held (fence {self.fence}); "
                "another process may have held the lock meanwhile"
            )

    def check(self) -> None:
        """Raise LockLostError if this holder's lease may have lapsed."""
        if self.lost:
            raise LockLostError(f"{self!r}: the lease lapsed while held (fence {self.fence})")

    def locked(self) -> bool:
        with self._conn.errors():
            return bool(self._conn.client.exists(self.part("owner")))

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # Condition's hooks: give the lock up entirely while waiting, then take it back.
    def _release_save(self) -> Any:
        self.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        self.acquire()

    def _is_owned(self) -> bool:
        return self._holds()


@register
class RLock(Lock):
    """``RLock(*, name=None, lease=30, max_hold=3600)``: re-entrant for the thread that
    holds it; one lease however deep."""

    kind = "rlock"

    def _restore(self, fields: dict[str, str]) -> None:
        super()._restore(fields)
        self._count = 0

    def _mine(self) -> bool:
        return self._holds() and self._holder[1] == threading.get_ident()

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if self._mine():
            self._count += 1
            return True
        if super().acquire(block, timeout):
            self._count = 1
            return True
        return False

    def release(self) -> None:
        if not self._mine():
            raise AssertionError("attempt to release recursive lock not owned by thread")
        self._count -= 1
        if self._count == 0:
            super().release()

    def _release_save(self) -> Any:
        count, self._count = self._count, 1
        self.release()
        return count

    def _acquire_restore(self, state: Any) -> None:
        self.acquire()
        self._count = state


def lock_for(lock: Any, conn: Connection) -> Lock:
    """The lock an object uses: a Lock or RLock of the same server."""
    if isinstance(lock, Lock) and lock._conn.location == conn.location:
        return lock
    raise TypeError("a Redis object's lock is a Lock or RLock of the same server")


def lock_named(ref: str, conn: Connection) -> Lock:
    """The lock stored as "kind:name" in an object's hash."""
    kind, name = ref.split(":", 1)
    cls = RLock if kind == "rlock" else Lock
    found: Lock = cls._attached(conn, name)
    return found


#: KEYS count; ARGV n.  1 if taken.
_SEM_TAKE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v >= tonumber(ARGV[1]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
#: KEYS count; ARGV n, maximum (-1: none), channel.  The new count, or -1 past the maximum.
_SEM_GIVE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
if tonumber(ARGV[2]) >= 0 and v > tonumber(ARGV[2]) then
  return -1
end
redis.call('SET', KEYS[1], v)
redis.call('PUBLISH', ARGV[3], '1')
return v
"""


@register
class Semaphore(RedisObject):
    """``Semaphore(value=1, *, name=None)`` on Redis: a counter taken and given in Lua."""

    kind = "semaphore"
    parts = ("count", "wake")
    _bounded = False

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError("semaphore initial value must be a non-negative int")
        found = self._open(name, {"maximum": value if self._bounded else -1})
        if found is None:
            with self._conn.errors():
                self._conn.client.set(self.part("count"), value)
            self._maximum = value if self._bounded else -1
        else:
            self._restore(found)

    def _restore(self, fields: dict[str, str]) -> None:
        self._maximum = int(fields["maximum"])

    def _take(self) -> bool | None:
        with self._conn.errors():
            return (
                True if self._conn.script(_SEM_TAKE)(keys=[self.part("count")], args=[1]) else None
            )

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        wait = None if (block and timeout is None) else (timeout if block else 0)
        return bool(wait_until(self, self._take, wait))

    def release(self, n: int = 1) -> None:
        with self._conn.errors():
            v = self._conn.script(_SEM_GIVE)(
                keys=[self.part("count")], args=[n, self._maximum, self._channel()]
            )
        if v == -1:
            raise ValueError("semaphore released too many times")

    def get_value(self) -> int:
        with self._conn.errors():
            return int(self._conn.client.get(self.part("count")) or 0)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@register
class BoundedSemaphore(Semaphore):
    """``BoundedSemaphore(value=1, *, name=None)``: release past the initial value raises."""

    kind = "bounded_semaphore"
    _bounded = True


@register
class Event(RedisObject):
    """``Event(*, name=None)`` on Redis: a flag; set() wakes every waiter."""

    kind = "event"
    parts = ("flag", "wake")

    def __init__(self, *, name: str | None = None) -> None:
        self._open(name, {})

    def is_set(self) -> bool:
        with self._conn.errors():
            return bool(self._conn.client.exists(self.part("flag")))

    def set(self) -> None:
        with self._conn.errors():
            pipe = self._conn.client.pipeline()
            pipe.set(self.part("flag"), 1).publish(self._channel(), b"1").execute()

    def clear(self) -> None:
        with self._conn.errors():
            self._conn.client.delete(self.part("flag"))

    def wait(self, timeout: float | None = None) -> bool:
        return bool(wait_until(self, lambda: True if self.is_set() else None, timeout))


#: KEYS waiters; ARGV n, ticket key prefix.  Wakes up to n waiters in order.
_NOTIFY = """
local woken = 0
for i = 1, tonumber(ARGV[1]) do
  local t = redis.call('LPOP', KEYS[1])
  if not t then break end
  redis.call('RPUSH', ARGV[2] .. t, '1')
  redis.call('EXPIRE', ARGV[2] .. t, 600)
  woken = woken + 1
end
return woken
"""


@register
class Condition(RedisObject):
    """``Condition(lock=None, *, name=None)`` on Redis: waiters queue tickets; notify(n)
    hands the first n theirs (a blocking pop each waits on)."""

    kind = "condition"
    parts = ("waiters", "wake")

    def __init__(self, lock: Any = None, *, name: str | None = None) -> None:
        lk = bound(RLock, self._conn)() if lock is None else lock_for(lock, self._conn)
        found = self._open(name, {"lock": lk.kind + ":" + lk.name})
        if found is None:
            self._lock = lk
        else:
            if lock is None:
                lk.unlink()
            self._restore(found)

    def _restore(self, fields: dict[str, str]) -> None:
        self._lock = lock_named(fields["lock"], self._conn)

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._lock.acquire(*args, **kwargs))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        if not self._lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        ticket = uuid.uuid4().hex
        conn = self._conn
        with conn.errors():
            conn.client.rpush(self.part("waiters"), ticket)
        state = self._lock._release_save()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = conn.location.timeout / 2
                if deadline is not None:
                    left = min(left, deadline - time.monotonic())
                    if left <= 0:
                        break
                with conn.errors():
                    if conn.client.blpop([self.part("t:" + ticket)], timeout=max(left, 0.01)):
                        return True
            with conn.errors():
                conn.client.lrem(self.part("waiters"), 0, ticket)
                # a notify may have handed the ticket over just now
                return bool(conn.client.lpop(self.part("t:" + ticket)))
        finally:
            self._lock._acquire_restore(state)

    def wait_for(self, predicate: Any, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._conn.errors():
            self._conn.script(_NOTIFY)(keys=[self.part("waiters")], args=[n, self.part("t:")])

    def notify_all(self) -> None:
        self.notify(2**31)


#: KEYS count, generation, broken; ARGV parties, channel.  {index, generation} or {-1, 0}.
_ARRIVE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {-1, 0} end
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
local c = redis.call('INCR', KEYS[1])
if c >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], 0)
  redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[2], '1')
end
return {c - 1, g}
"""


@register
class Barrier(RedisObject):
    """``Barrier(parties, action=None, timeout=None, *, name=None)`` on Redis."""

    kind = "barrier"
    parts = ("count", "generation", "broken", "wake")

    def __init__(
        self,
        parties: int,
        action: Any = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if not isinstance(parties, int) or parties < 1:
            raise ValueError("parties must be a positive int")
        found = self._open(name, {"parties": parties})
        self._restore(found or {"parties": str(parties)})
        self._action, self._timeout = action, timeout

    def _restore(self, fields: dict[str, str]) -> None:
        self.parties = int(fields["parties"])
        self._action = None
        self._timeout = None

    def _keys(self) -> list[str]:
        return [self.part("count"), self.part("generation"), self.part("broken")]

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            timeout = self._timeout
        with self._conn.errors():
            index, gen = self._conn.script(_ARRIVE)(
                keys=self._keys(), args=[self.parties, self._channel()]
            )
        if index < 0:
            raise threading.BrokenBarrierError
        if index == self.parties - 1 and self._action is not None:
            try:
                self._action()
            except BaseException:
                self.abort()
                raise

        def passed() -> bool | None:
            with self._conn.errors():
                now, broken = self._conn.client.mget(self._keys()[1:])
            if int(now or 0) != gen:
                return True
            return False if broken else None

        done = wait_until(self, passed, timeout)
        if not done:
            self.abort()
            raise threading.BrokenBarrierError
        return int(index)

    def abort(self) -> None:
        with self._conn.errors():
            pipe = self._conn.client.pipeline()
            pipe.set(self.part("broken"), 1).publish(self._channel(), b"1").execute()

    def reset(self) -> None:
        """Back to the empty, unbroken state (call it when no party is waiting)."""
        with self._conn.errors():
            self._conn.client.pipeline().delete(self.part("broken")).set(
                self.part("count"), 0
            ).execute()

    @property
    def n_waiting(self) -> int:
        with self._conn.errors():
            return int(self._conn.client.get(self.part("count")) or 0)

    @property
    def broken(self) -> bool:
        with self._conn.errors():
            return bool(self._conn.client.exists(self.part("broken")))
