"""Increments of one shared count: procshare against multiprocessing and the C-call floor."""

from __future__ import annotations

from typing import Any

from ..._data.counter import Counter
from ..._data.value import Value
from ._runner import Case, ctx

BASELINE = "mp.Value           with get_lock(): v.value += 1"


def _loop_iadd(obj: Any, n: int) -> None:
    for _ in range(n):
        obj += 1


def _loop_locked(obj: Any, n: int) -> None:
    lock = obj.get_lock()
    for _ in range(n):
        with lock:
            obj.value += 1


def _loop_value_unsafe(obj: Any, n: int) -> None:
    for _ in range(n):
        obj.value += 1


def _loop_manager_locked(obj: Any, n: int) -> None:
    value, lock = obj
    for _ in range(n):
        with lock:
            value.value += 1


def _loop_floor(obj: Any, n: int) -> None:
    for _ in range(n):
        len(obj)


def _value_of(v: Any) -> int:
    return int(v.value)


def cases(managers: list[Any]) -> list[Case]:
    """The counter cases; Manager processes started for them are appended to managers."""

    def manager_value() -> Any:
        manager = ctx.Manager()
        managers.append(manager)
        return manager.Value("q", 0), manager.Lock()

    return [
        Case("procshare Counter  c += 1", Counter, _loop_iadd, _value_of),
        Case("procshare Value    v += 1", lambda: Value("q", 0), _loop_iadd, _value_of),
        Case("procshare Value    with get_lock(): v.value += 1", lambda: Value("q", 0),
             _loop_locked, _value_of, 0.5),
        Case(BASELINE, lambda: ctx.Value("q", 0),
             _loop_locked, _value_of, 0.2),
        Case("mp.RawValue        v.value += 1 (unsafe)", lambda: ctx.RawValue("q", 0),
             _loop_value_unsafe, _value_of),
        Case("mp Manager Value   with Manager Lock", manager_value, _loop_manager_locked,
             lambda s: int(s[0].value), 0.002),
        Case("floor: one C call  len(b'')", lambda: b"", _loop_floor),
    ]  # fmt: skip
