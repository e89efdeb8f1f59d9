"""procshare: share variables between Python processes, correctly and fast.

Shared objects live in named POSIX shared-memory segments and pass between
processes as handles.  The names multiprocessing uses for shared state
(Value, Array, the locks, Queue, ...) work as a drop-in; procshare adds
atomic operations, names, robust locks, asyncio waits, Counter, Dict and List.
"""

from multiprocessing import (
    Pool,
    Process,
    active_children,
    cpu_count,
    current_process,
    get_context,
    set_start_method,
)

from ._array import Array, RawArray
from ._barrier import Barrier, BrokenBarrierError
from ._condition import Condition
from ._counter import Counter
from ._dict import Dict
from ._errors import CorruptSegmentError, KindError, NotFoundError, ProcshareError, VersionError
from ._event import Event
from ._list import List
from ._lock import Lock, RLock
from ._queue import JoinableQueue, Queue, SimpleQueue
from ._semaphore import BoundedSemaphore, Semaphore
from ._value import RawValue, Value

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "CorruptSegmentError",
    "Counter",
    "Dict",
    "Event",
    "JoinableQueue",
    "KindError",
    "List",
    "Lock",
    "NotFoundError",
    "Pool",
    "Process",
    "ProcshareError",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SimpleQueue",
    "Value",
    "VersionError",
    "active_children",
    "cpu_count",
    "current_process",
    "get_context",
    "set_start_method",
]
