"""The Redis back end: the same types, on a Redis (or Valkey) server named by a URL.

``procshare.connect("redis://:password@host:6379/0")`` returns a Context whose
constructors build objects on that server (``rediss://`` for TLS, ``unix://`` for a
socket; ``?timeout=S`` bounds each command, 10 s by default).  Objects are named
and attached as on shared memory (keys under ``procshare:``), pickle as handles
naming the server (without the password unless ``pickle_password=True``), and
keep the contract of tests/test_contract.py.  Each module says how its types map
onto Redis and what they guarantee.  Needs redis-py: ``pip install
'procshare[redis]'``.
"""

from __future__ import annotations

from typing import Any

from .. import Backend
from ._base import bound
from ._collections import Dict, List, namespace_for
from ._connection import Connection, Location, connection
from ._queues import JoinableQueue, Queue, SimpleQueue
from ._sync import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore
from ._values import Array, Counter, RawArray, RawValue, Value

_TYPES: dict[str, Any] = {
    "Array": Array,
    "Barrier": Barrier,
    "BoundedSemaphore": BoundedSemaphore,
    "Condition": Condition,
    "Counter": Counter,
    "Dict": Dict,
    "Event": Event,
    "JoinableQueue": JoinableQueue,
    "List": List,
    "Lock": Lock,
    "Queue": Queue,
    "RLock": RLock,
    "RawArray": RawArray,
    "RawValue": RawValue,
    "Semaphore": Semaphore,
    "SimpleQueue": SimpleQueue,
    "Value": Value,
}


def backend(conn: Connection) -> Backend:
    """The constructors of one server's objects."""
    constructors: dict[str, Any] = {name: bound(cls, conn) for name, cls in _TYPES.items()}
    constructors["Namespace"] = namespace_for(conn)
    return Backend(f"redis {conn.location}", constructors)


def connected(url: str, pickle_password: bool = False) -> Backend:
    """The back end of the server url names, checked to answer (address, password)."""
    conn = connection(Location.parse(url), pickle_password)
    with conn.errors():
        conn.client.ping()
    return backend(conn)


def backend_for_url(url: str) -> Backend:
    """The back end of the server url names, connecting on first use (PROCSHARE_URL)."""
    return backend(connection(Location.parse(url)))


__all__ = ["backend", "backend_for_url", "connected"]
