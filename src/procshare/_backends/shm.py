"""The shared-memory back end: the types of ``_data`` and ``_sync``."""

from __future__ import annotations

from .._data.array import Array, RawArray
from .._data.counter import Counter
from .._data.dict import Dict
from .._data.list import List
from .._data.namespace import Namespace
from .._data.queue import JoinableQueue, Queue, SimpleQueue
from .._data.value import RawValue, Value
from .._sync.barrier import Barrier
from .._sync.condition import Condition
from .._sync.event import Event
from .._sync.lock import Lock, RLock
from .._sync.semaphore import BoundedSemaphore, Semaphore
from . import Backend

SHM = Backend(
    "shm",
    {
        "Array": Array, "Barrier": Barrier, "BoundedSemaphore": BoundedSemaphore,
        "Condition": Condition, "Counter": Counter, "Dict": Dict, "Event": Event,
        "JoinableQueue": JoinableQueue, "List": List, "Lock": Lock, "Namespace": Namespace,
        "Queue": Queue,
        "RLock": RLock, "RawArray": RawArray, "RawValue": RawValue, "Semaphore": Semaphore,
        "SimpleQueue": SimpleQueue, "Value": Value,
    },
)  # fmt: skip
