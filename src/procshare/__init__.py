"""procshare: share variables between Python processes, correctly and fast.

Shared objects live in named POSIX shared-memory segments and pass between
processes as handles.  The names multiprocessing uses for shared state
(Value, Array, the locks, Queue, ...) work as a drop-in; procshare adds
atomic operations, names, robust locks, asyncio waits, Counter, Dict and List.
"""

__version__ = "0.2.0"

import os as _os
from multiprocessing import (
    AuthenticationError,
    BufferTooShort,
    Pipe,
    Pool,
    Process,
    ProcessError,
    TimeoutError,
    active_children,
    allow_connection_pickling,
    cpu_count,
    current_process,
    freeze_support,
    get_all_start_methods,
    get_logger,
    get_start_method,
    log_to_stderr,
    parent_process,
    reducer,
    set_executable,
    set_forkserver_preload,
    set_start_method,
)

from ._context import Context, connect, default_backend, get_context
from ._data.array import Array, RawArray
from ._data.counter import Counter
from ._data.dict import Dict
from ._data.list import List
from ._data.queue import JoinableQueue, Queue, SimpleQueue
from ._data.value import RawValue, Value
from ._errors import (
    CorruptSegmentError,
    KindError,
    LockLostError,
    NotFoundError,
    ProcshareError,
    SpaceError,
    StoreUnavailableError,
    UntrustedSegmentError,
    VersionError,
)
from ._sync.barrier import Barrier, BrokenBarrierError
from ._sync.condition import Condition
from ._sync.event import Event
from ._sync.lock import Lock, RLock
from ._sync.semaphore import BoundedSemaphore, Semaphore
from .managers import BaseManager, Namespace, SyncManager, started_manager

if _os.environ.get("PROCSHARE_URL"):  # the same program, its objects on Redis
    globals().update(default_backend().constructors)


def Manager() -> SyncManager:
    """A started SyncManager: ``with procshare.Manager() as manager:``, as in multiprocessing."""
    return started_manager()


__all__ = [
    "Array",
    "AuthenticationError",
    "Barrier",
    "BaseManager",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BufferTooShort",
    "Condition",
    "Context",
    "CorruptSegmentError",
    "Counter",
    "Dict",
    "Event",
    "JoinableQueue",
    "KindError",
    "List",
    "Lock",
    "LockLostError",
    "Manager",
    "Namespace",
    "NotFoundError",
    "Pipe",
    "Pool",
    "Process",
    "ProcessError",
    "ProcshareError",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SimpleQueue",
    "SpaceError",
    "StoreUnavailableError",
    "SyncManager",
    "TimeoutError",
    "UntrustedSegmentError",
    "Value",
    "VersionError",
    "__version__",
    "active_children",
    "allow_connection_pickling",
    "connect",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "log_to_stderr",
    "parent_process",
    "reducer",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
]
