"""What every Redis object shares: its keys, its value encoding, its handle, its waits.

Keys.  An object named N lives under ``procshare:{N}`` (a hash holding its kind and
parameters, and for numbers the number itself) and, where it needs more, keys
``procshare:{N}:<part>``; the braces keep them in one cluster slot.  Anonymous
objects get a random name starting with ``~`` (outside the user alphabet).  On
Redis every object lives until ``unlink()``: no process can tell whether others
on other machines still use it.

Values (queue messages, dict and list elements) use shared memory's tags: an
int that fits 62 bits is its decimal digits, so ``HINCRBY`` and ``INCRBY`` update
it in place; anything else is one tag byte (bytes, pickle, str: 0, 1, 2, never
a digit or ``-``) and the same bytes as in a segment.

Handles pickle as (kind, the server's URL without the password unless the
context was made with ``pickle_password=True``, name); unpickled, they attach
through this process's connection to that server (see _connection.for_handle).

Every blocking wait is one loop (wait_until): check, and if not yet, sleep on
the object's pub/sub channel, which every state change that can end a wait
publishes to; the sleep is sliced so a wait also notices a lease that lapses
and never outlasts the socket timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from ... import _core
from ..._errors import KindError, NotFoundError
from ..._shm import names as _names
from ._connection import PREFIX, Connection, for_handle

T = TypeVar("T")


#: Values as Redis stores them, a batch in one C call (the encoding is procshare._native's).
encode_many: Callable[[Iterable[object]], list[bytes]] = _core.redis_encode
decode_many: Callable[[Iterable[bytes]], list[Any]] = _core.redis_decode


def encode(value: object) -> bytes:
    """One value as Redis stores it (decimal digits for an int, else tag byte + bytes)."""
    return encode_many((value,))[0]


def decode(raw: bytes) -> Any:
    """The value encode stored."""
    return decode_many((raw,))[0]


#: Store a hash field if it holds what was expected: KEYS[1] the hash; ARGV field,
#: expected, new.  1 if stored.
CAS_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""


def optimistic(obj: RedisObject, key: str, step: Callable[[Any], T]) -> T:
    """step(pipe) in one transaction that commits only if key did not change meanwhile:
    step reads through pipe (WATCH is on), calls pipe.multi(), queues its writes; run
    again from the start when another client wrote key first."""
    from redis.exceptions import WatchError

    with obj._conn.errors():
        while True:
            with obj._conn.client.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    result = step(pipe)
                    pipe.execute()
                    return result
                except WatchError:
                    continue


#: Create the object, or read back what exists: KEYS[1] the object's hash; ARGV the kind,
#: then field, value pairs.  Returns {} when created, else the existing hash's fields.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'kind', unpack(ARGV))
return {}
"""


class RedisObject:
    """A named object on a Redis server; subclasses set kind and their key parts."""

    kind: ClassVar[str]
    parts: ClassVar[tuple[str, ...]] = ()  # the keys procshare:{name}:<part> it uses
    _conn: ClassVar[Connection]  # set on the context's subclass of each type

    name: str
    key: str

    def _open(self, name: str | None, params: dict[str, Any]) -> dict[str, str] | None:
        """Create the object (None) or attach it (the parameters it was created with)."""
        if name is None:
            name = "~" + uuid.uuid4().hex
        else:
            _names.validate(name)
        self._bind(name)
        flat: list[Any] = []
        for k, v in params.items():
            flat += [k, v]
        with self._conn.errors():
            found = self._conn.script(_CREATE)(keys=[self.key], args=[self.kind, *flat])
        if not found:
            return None
        fields = {found[i].decode(): found[i + 1].decode() for i in range(0, len(found), 2)}
        if fields.get("kind") != self.kind:
            raise KindError(
                f"{name!r} on {self._conn.location} is a {fields.get('kind')}, not a {self.kind}"
            )
        return fields

    def _bind(self, name: str) -> None:
        self.name = name
        self.key = f"{PREFIX}{{{name}}}"

    def part(self, part: str) -> str:
        return f"{self.key}:{part}"

    @classmethod
    def _attached(cls, conn: Connection, name: str) -> Any:
        """The object named name on conn's server, of this kind (KindError, NotFoundError)."""
        obj = object.__new__(bound(cls, conn))
        obj._bind(name)
        with conn.errors():
            fields = {k.decode(): v.decode() for k, v in conn.client.hgetall(obj.key).items()}
        if not fields:
            raise NotFoundError(f"no procshare object named {name!r} on {conn.location}")
        if fields.get("kind") != cls.kind:
            raise KindError(
                f"{name!r} on {conn.location} is a {fields.get('kind')}, not a {cls.kind}"
            )
        obj._restore(fields)
        return obj

    def _restore(self, fields: dict[str, str]) -> None:
        """Take up the parameters the object was created with (attach, unpickle)."""

    def __reduce__(self) -> tuple[Any, ...]:
        conn = self._conn
        url = conn.location.url(password=conn.pickle_password)
        return _attach, (self.kind, url, self.name)

    def unlink(self) -> None:
        """Delete the object's keys: every handle of it, everywhere, stops working."""
        with self._conn.errors():
            self._conn.client.delete(self.key, *(self.part(p) for p in self.parts))

    def _channel(self) -> str:
        return self.part("wake")

    def _notify(self) -> None:
        with self._conn.errors():
            self._conn.client.publish(self._channel(), b"1")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RedisObject)
            and other.kind == self.kind
            and other.name == self.name
            and other._conn.location == self._conn.location
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self._conn.location))

    def __repr__(self) -> str:
        return f"<procshare {type(self).__name__} {self.name!r} on {self._conn.location}>"


def wait_until(
    obj: RedisObject,
    check: Callable[[], T | None],
    timeout: float | None,
    cap: Callable[[], float] | None = None,
) -> T | None:
    """check() until it returns something, sleeping on obj's channel between tries; None
    once timeout seconds passed (None: no limit).  cap() bounds each sleep (a lease's
    remaining time).  Checking again after subscribing means no notification is missed."""
    found = check()
    if found is not None or (timeout is not None and timeout <= 0):
        return found
    conn = obj._conn
    deadline = None if timeout is None else time.monotonic() + timeout
    with conn.errors():
        pubsub = conn.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(obj._channel())
            while True:
                found = check()
                if found is not None:
                    return found
                left = conn.location.timeout / 2
                if deadline is not None:
                    left = min(left, deadline - time.monotonic())
                    if left <= 0:
                        return None
                if cap is not None:
                    left = max(0.001, min(left, cap()))
                pubsub.get_message(timeout=left)
        finally:
            pubsub.close()


_CLASSES: dict[str, type[RedisObject]] = {}
_BOUND: dict[tuple[type[RedisObject], Connection], type[Any]] = {}


def register(cls: type[RedisObject]) -> type[RedisObject]:
    """Class decorator: the kind's class, for handles to find."""
    _CLASSES[cls.kind] = cls
    return cls


def bound(cls: type[T], conn: Connection) -> type[T]:
    """cls for the objects of one server: a subclass carrying its connection (made once)."""
    key = (cls, conn)
    found = _BOUND.get(key)  # type: ignore[arg-type]
    if found is None:
        found = _BOUND[key] = type(cls.__name__, (cls,), {"_conn": conn, "__slots__": ()})  # type: ignore[index]
        found.__qualname__ = cls.__qualname__
        found.__module__ = cls.__module__
    return found


def _attach(kind: str, url: str, name: str) -> Any:
    """Unpickle a handle: the object on the server url names."""
    return _CLASSES[kind]._attached(for_handle(url), name)
