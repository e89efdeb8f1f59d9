"""Contexts: multiprocessing's context API with procshare's shared objects.

``procshare.get_context(method)`` returns a Context whose Value, Array, the
locks, the queues (and procshare's Counter, Dict, List) are procshare's, and
whose Process, Pool, Pipe, Manager and everything else come from
multiprocessing's context for that start method.  procshare's objects do not
depend on the start method (they travel as handles), so only the processes
differ between contexts.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from ._data.array import Array, RawArray
from ._data.counter import Counter
from ._data.dict import Dict
from ._data.list import List
from ._data.queue import JoinableQueue, Queue, SimpleQueue
from ._data.value import RawValue, Value
from ._sync.barrier import Barrier
from ._sync.condition import Condition
from ._sync.event import Event
from ._sync.lock import Lock, RLock
from ._sync.semaphore import BoundedSemaphore, Semaphore

#: The shared objects a procshare context makes; every other name is multiprocessing's.
SHARED: dict[str, Any] = {
    "Array": Array, "Barrier": Barrier, "BoundedSemaphore": BoundedSemaphore,
    "Condition": Condition, "Counter": Counter, "Dict": Dict, "Event": Event,
    "JoinableQueue": JoinableQueue, "List": List, "Lock": Lock, "Queue": Queue,
    "RLock": RLock, "RawArray": RawArray, "RawValue": RawValue, "Semaphore": Semaphore,
    "SimpleQueue": SimpleQueue, "Value": Value,
}  # fmt: skip


class Context:
    """A multiprocessing context whose shared objects are procshare's."""

    def __init__(self, processes: Any) -> None:
        self._processes = processes  # the multiprocessing context that starts processes

    def __getattr__(self, name: str) -> Any:
        if name in SHARED:
            return SHARED[name]
        return getattr(self._processes, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._processes)) | set(SHARED))

    def get_context(self, method: str | None = None) -> Context:
        return get_context(method)

    def __repr__(self) -> str:
        return f"<procshare context {self._processes.get_start_method()!r}>"


def get_context(method: str | None = None) -> Context:
    """multiprocessing.get_context(method), with procshare's shared objects."""
    return Context(multiprocessing.get_context(method))
