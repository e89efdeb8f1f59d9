"""``procshare inspect NAME``: what a segment is, and the live state of its object.

The state is read the way a reader of the object reads it, never by taking
its lock or waiting on it: a lock's holder and sleepers come from its word, a
queue's depth from its counters, a Dict's or List's contents from its current
table.  A segment this user would not attach (another owner, or open to
others) is described from its header alone.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from .. import _core
from .._errors import ProcshareError
from .._shm import names as _names
from .._shm.arena import census
from .._shm.inventory import Entry, entry
from .._shm.names import Kind
from .._shm.segment import Segment, accepting


def _value(obj: Any, limit: int) -> dict[str, Any]:
    return {"typecode": obj.typecode, "value": obj.load()}


def _array(obj: Any, limit: int) -> dict[str, Any]:
    return {"typecode": obj.typecode, "length": len(obj), "preview": list(obj[:limit])}


def _holder(pid: int) -> dict[str, Any]:
    return {"held_by": pid or None, "holder_alive": bool(pid) and _core.pid_alive(pid)}


def _lock(obj: Any, limit: int) -> dict[str, Any]:
    pid, sleepers, count = obj._state()
    state = {**_holder(pid), "sleeping_waiters": sleepers}
    if obj._seg.kind is Kind.RLOCK:
        state["recursion"] = count
    return state


def _semaphore(obj: Any, limit: int) -> dict[str, Any]:
    value, sleepers, maximum = obj._state()
    return {"value": value, "maximum": maximum or None, "sleeping_waiters": sleepers}


def _condition(obj: Any, limit: int) -> dict[str, Any]:
    pid, sleepers, _ = obj._lock._state()
    return {"waiting": obj._n.load(), "lock": {**_holder(pid), "sleeping_waiters": sleepers}}


def _event(obj: Any, limit: int) -> dict[str, Any]:
    return {"set": obj.is_set()}


def _barrier(obj: Any, limit: int) -> dict[str, Any]:
    return {"parties": obj.parties, "waiting": obj.n_waiting, "broken": obj.broken}


def _queue(obj: Any, limit: int) -> dict[str, Any]:
    count, used, capacity, unfinished, getters, putters, puts, shards = obj._stats()
    state = {"messages": count, "bytes_used": used, "capacity": capacity * shards,
             "shards": shards, "sleeping_getters": getters, "sleeping_putters": putters,
             "puts": puts}  # fmt: skip
    if obj._seg.kind is Kind.JOINABLE_QUEUE:
        state["unfinished_tasks"] = unfinished
    return state


def _table(obj: Any) -> dict[str, Any]:
    _, nslots, _, heap_used, heap_size, garbage, _ = obj._current().stats()
    return {"generation": obj._gen, "slots": nslots, "heap_used": heap_used,
            "heap_size": heap_size, "heap_garbage": garbage}  # fmt: skip


def _dict(obj: Any, limit: int) -> dict[str, Any]:
    preview = {repr(k): v for k, v in itertools.islice(obj.items(), limit)}
    return {"length": len(obj), **_table(obj), "preview": preview}


def _list(obj: Any, limit: int) -> dict[str, Any]:
    return {"length": len(obj), "generation": obj._gen, "writes": obj._current().changes(),
            "preview": obj[:limit]}  # fmt: skip


#: How to read each kind's state.
READERS: dict[Kind, Callable[[Any, int], dict[str, Any]]] = {
    Kind.VALUE: _value, Kind.COUNTER: _value, Kind.ARRAY: _array,
    Kind.LOCK: _lock, Kind.RLOCK: _lock,
    Kind.SEMAPHORE: _semaphore, Kind.BOUNDED_SEMAPHORE: _semaphore,
    Kind.CONDITION: _condition, Kind.EVENT: _event, Kind.BARRIER: _barrier,
    Kind.QUEUE: _queue, Kind.SIMPLE_QUEUE: _queue, Kind.JOINABLE_QUEUE: _queue,
    Kind.DICT: _dict, Kind.LIST: _list,
}  # fmt: skip


def kind_of(e: Entry) -> Kind:
    """The Kind of an entry that is not damaged ("counter arena" and the like: ARENA)."""
    return Kind.ARENA if e.kind.endswith(" arena") else Kind[e.kind.upper()]


def describe(e: Entry, limit: int) -> dict[str, Any]:
    """The entry's facts and, where this user may attach it, its object's live state."""
    info: dict[str, Any] = {
        "name": e.name, "kind": e.kind, "bytes": e.size, "owner": e.owner,
        "mode": f"{e.mode:#o}", "creator_pid": e.creator_pid, "creator_alive": e.creator_alive,
    }  # fmt: skip
    if e.kind.startswith("damaged"):
        return info
    kind = kind_of(e)
    if kind in _names.TABLE_KINDS:
        info["table_of"] = _names.root_of(e.name)
        return info
    if e.refused:
        info["state"] = "not read: the segment is not this user's alone"
        return info
    try:
        with accepting(e.mode):
            if kind == Kind.ARENA:  # many objects, a slot each (inspect one by its slot's name)
                info["state"] = census(Segment.attach(e.name, Kind.ARENA))
                return info
            obj = _names.class_of(kind)._attach_named(e.name)
        info["state"] = READERS[kind](obj, limit)
    except ProcshareError as err:  # gone meanwhile, or damaged past its header
        info["state"] = f"not read: {err}"
    return info


def _lines(info: dict[str, Any], indent: str = "") -> list[str]:
    width = max(len(k) for k in info)
    out = []
    for key, value in info.items():
        if isinstance(value, dict) and key != "preview":
            out.append(f"{indent}{key}:")
            out.extend(_lines(value, indent + "  "))
        else:
            shown = value if isinstance(value, str) else repr(value)
            out.append(f"{indent}{key:{width}}  {shown}")
    return out


def main(name: str, limit: int, as_json: bool) -> int:
    if not _names.nameable(name):
        try:
            _names.validate(name)  # says why, as a constructor would
        except (TypeError, ValueError) as err:
            print(f"procshare inspect: {err}")
        return 1
    e = entry(name)
    if e is None:
        print(f"procshare inspect: no procshare object named {name!r}")
        return 1
    info = describe(e, limit)
    print(json.dumps(info, default=repr, indent=2) if as_json else "\n".join(_lines(info)))
    return 0
