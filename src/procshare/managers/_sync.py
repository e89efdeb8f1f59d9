"""SyncManager: multiprocessing's Manager() types, as procshare's shared-memory objects.

A client on the server's machine gets the objects themselves (a Dict, a
List, a Lock, ...), so no access waits for the server; the server only owns
them, and releases them when it shuts down.  A client elsewhere (or one
started with ``local=False``) gets proxies of the same objects.  ``Pool`` runs
in the server and is always reached through a proxy.
"""

from __future__ import annotations

from multiprocessing import managers as mp_managers
from multiprocessing import pool as _pool
from typing import Any, ClassVar

from .. import _core
from .._data.array import Array
from .._data.dict import Dict
from .._data.list import List
from .._data.namespace import Namespace
from .._data.object_value import ObjectValue
from .._data.queue import JoinableQueue, Queue
from .._data.value import Value
from .._shm.typecodes import TYPECODES
from .._sync.barrier import Barrier
from .._sync.condition import Condition
from .._sync.event import Event
from .._sync.lock import Lock, RLock
from .._sync.semaphore import BoundedSemaphore, Semaphore
from ._base import PROXY_TWINS, BaseManager
from ._proxy import BaseProxy, add_methods


def managed_value(typecode: Any, value: Any = None, lock: object = True) -> Any:
    """manager.Value: the atomic C Value for a ctypes typecode, else an ObjectValue."""
    if (isinstance(typecode, str) and len(typecode) == 1 and typecode in TYPECODES) or (
        isinstance(typecode, type) and hasattr(typecode, "_type_")
    ):
        return Value(typecode, value) if value is not None else Value(typecode)
    return ObjectValue(typecode, value)


def managed_array(typecode: Any, sequence: Any, lock: object = True) -> Any:
    """manager.Array: a procshare Array."""
    return Array(typecode, sequence)


# -- proxies, for clients that do not share the server's memory --------------------------


class IteratorProxy(BaseProxy):
    _exposed_ = ("__next__", "close", "send", "throw")

    def __iter__(self) -> IteratorProxy:
        return self

    def __next__(self) -> Any:
        return self._callmethod("__next__")


class ValueProxy(BaseProxy):
    """``.value``, ``get()``, ``set()``; ``proxy.value += n`` is one atomic add in the server."""

    _exposed_ = ("add", "get", "set")

    def __init__(self, *args: Any, **kwds: Any) -> None:
        super().__init__(*args, **kwds)
        self._source = _core.new_source()

    def get(self) -> Any:
        return _core.loaded(self._callmethod("get"), self._source)

    def set(self, value: Any) -> None:
        addend = _core.pending_addend(value, self._source)
        if addend is None:
            self._callmethod("set", (value,))
        else:
            self._callmethod("add", (addend,))

    value = property(get, set)


class NamespaceProxy(BaseProxy):
    _exposed_ = ("__delattr__", "__getattribute__", "__repr__", "__setattr__")

    def __getattr__(self, key: str) -> Any:
        if key[0] == "_":
            raise AttributeError(key)
        return self._callmethod("__getattribute__", (key,))

    def __setattr__(self, key: str, value: Any) -> None:
        if key[0] == "_":
            object.__setattr__(self, key, value)
        else:
            self._callmethod("__setattr__", (key, value))

    def __delattr__(self, key: str) -> None:
        if key[0] == "_":
            object.__delattr__(self, key)
        else:
            self._callmethod("__delattr__", (key,))

    def __repr__(self) -> str:
        return str(self._callmethod("__repr__"))


class AcquirerProxy(BaseProxy):
    _exposed_: tuple[str, ...] | None = ("acquire", "locked", "release")

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        args = (blocking,) if timeout is None else (blocking, timeout)
        result: bool = self._callmethod("acquire", args)
        return result

    def release(self) -> None:
        self._callmethod("release")

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class ConditionProxy(AcquirerProxy):
    _exposed_ = ("acquire", "notify", "notify_all", "release", "wait", "wait_for")

    def wait(self, timeout: float | None = None) -> bool:
        result: bool = self._callmethod("wait", (timeout,))
        return result

    def notify(self, n: int = 1) -> None:
        self._callmethod("notify", (n,))

    def notify_all(self) -> None:
        self._callmethod("notify_all")


class PoolProxy(BaseProxy):
    """A Pool in the server: its methods, results and iterators through proxies."""

    _exposed_ = ("apply", "apply_async", "close", "imap", "imap_unordered", "join", "map",
                 "map_async", "starmap", "starmap_async", "terminate")  # fmt: skip
    _method_to_typeid_: ClassVar[dict[str, str]] = {
        "apply_async": "AsyncResult",
        "map_async": "AsyncResult",
        "starmap_async": "AsyncResult",
        "imap": "Iterator",
        "imap_unordered": "Iterator",
    }

    def __enter__(self) -> PoolProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._callmethod("terminate")


add_methods(PoolProxy, PoolProxy._exposed_)


_DICT = ("__contains__", "__delitem__", "__getitem__", "__iter__", "__len__", "__setitem__",
         "clear", "compare_and_set", "copy", "get", "incr", "items", "keys", "pop", "popitem",
         "setdefault", "update", "values")  # fmt: skip
_LIST = ("__add__", "__contains__", "__delitem__", "__getitem__", "__iadd__", "__imul__",
         "__iter__", "__len__", "__mul__", "__reversed__", "__rmul__", "__setitem__", "append",
         "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse",
         "sort")  # fmt: skip
_QUEUE = ("empty", "full", "get", "get_many", "get_nowait", "join", "put", "put_many",
          "put_nowait", "qsize", "task_done")  # fmt: skip
_ITER = {"__iter__": "Iterator"}


class SyncManager(BaseManager):
    """multiprocessing's SyncManager: ``procshare.Manager()`` returns a started one."""


for _typeid, _callable, _proxytype, _exposed, _to_typeid in (
    ("Queue", Queue, None, _QUEUE, None),
    ("JoinableQueue", JoinableQueue, None, _QUEUE, None),
    ("Event", Event, None, ("clear", "is_set", "set", "wait"), None),
    ("Lock", Lock, AcquirerProxy, None, None),
    ("RLock", RLock, AcquirerProxy, None, None),
    ("Semaphore", Semaphore, AcquirerProxy, None, None),
    ("BoundedSemaphore", BoundedSemaphore, AcquirerProxy, None, None),
    ("Condition", Condition, ConditionProxy, None, None),
    ("Barrier", Barrier, None, ("abort", "reset", "wait", "broken", "n_waiting", "parties"), None),
    ("dict", Dict, None, _DICT, _ITER),
    ("list", List, None, _LIST, _ITER),
    ("Namespace", Namespace, NamespaceProxy, None, None),
    ("Value", managed_value, ValueProxy, None, None),
    ("Array", managed_array, None, ("__getitem__", "__len__", "__setitem__"), None),
):
    SyncManager._add(_typeid, _callable, _proxytype, _exposed, _to_typeid, True, shared=True)

# Registering one of multiprocessing's proxy classes gets the procshare class of that name.
PROXY_TWINS.update(
    {getattr(mp_managers, cls.__name__): cls
     for cls in (ValueProxy, NamespaceProxy, AcquirerProxy, ConditionProxy, IteratorProxy,
                 PoolProxy)}
)  # fmt: skip

SyncManager.register("Pool", _pool.Pool, PoolProxy)
SyncManager.register("AsyncResult", create_method=False,
                     exposed=("get", "ready", "successful", "wait"))  # fmt: skip
SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)


def started_manager(ctx: Any = None) -> SyncManager:
    """A started SyncManager (what ``procshare.Manager()`` returns)."""
    manager = SyncManager(ctx=ctx)
    manager.start()
    return manager
