"""Managers: the same calls through procshare's manager and multiprocessing's, side by side.

Each operation runs in a loop for a fixed time in one client process, against
a procshare manager and a multiprocessing manager started for the run; the
figure is the median of the repeats, the ratio procshare / multiprocessing.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from multiprocessing import managers as mp_managers
from typing import Any

from ...managers import BaseManager, SyncManager
from ..table import RATIO, Table, speedup
from ._runner import ctx


class Calc:
    """The registered class both managers serve."""

    def add(self, a: int, b: int) -> int:
        return a + b


class _PsManager(BaseManager):
    pass


class _MpManager(mp_managers.BaseManager):
    pass


_PsManager.register("Calc", Calc)
_MpManager.register("Calc", Calc)


def _rate(op: Callable[[], object], seconds: float) -> float:
    """Operations per second of op run in a loop for about seconds (after one untimed call,
    which opens the client's channel)."""
    op()
    n, t0 = 0, time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(32):
            op()
        n += 32
        t = time.perf_counter()
        if t >= end:
            return n / (t - t0)


def _operations(m: Any, calc: Any) -> list[tuple[str, Callable[[], object]]]:
    d, v, lock, ns = m.dict(), m.Value("i", 0), m.Lock(), m.Namespace()
    d["key"], ns.x = "value", 1

    def incr() -> None:
        v.value += 1

    def acquire_release() -> None:
        lock.acquire()
        lock.release()

    return [
        ("registered class: c.add(1, 2)", lambda: calc.add(1, 2)),
        ("Value: v.value += 1", incr),
        ("dict: d['key']", lambda: d["key"]),
        ("dict: d['key'] = 'value'", lambda: d.__setitem__("key", "value")),
        ("Lock: acquire + release", acquire_release),
        ("Namespace: ns.x", lambda: ns.x),
    ]


@contextlib.contextmanager
def _managers() -> Iterator[dict[str, list[tuple[str, Callable[[], object]]]]]:
    with contextlib.ExitStack() as stack:
        ps_sync = stack.enter_context(SyncManager(ctx=ctx))
        ps_calc = stack.enter_context(_PsManager(ctx=ctx)).Calc()
        mp_sync = stack.enter_context(mp_managers.SyncManager(ctx=ctx))
        mp_calc = stack.enter_context(_MpManager(ctx=ctx)).Calc()  # type: ignore[attr-defined]
        yield {
            "procshare": _operations(ps_sync, ps_calc),
            "multiprocessing": _operations(mp_sync, mp_calc),
        }


def run(seconds: float, repeats: int) -> list[tuple[str, float, float]]:
    """(operation, procshare ops/s, multiprocessing ops/s), medians of repeats."""
    with _managers() as ops:
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(repeats):  # round-robin, so drift affects both alike
            for side, pairs in ops.items():
                for i, (_, op) in enumerate(pairs):
                    rates.setdefault((side, i), []).append(_rate(op, seconds))
        return [
            (name, statistics.median(rates["procshare", i]),
             statistics.median(rates["multiprocessing", i]))
            for i, (name, _) in enumerate(ops["procshare"])
        ]  # fmt: skip


def table(rows: list[tuple[str, float, float]], seconds: float) -> Table:
    """Each operation through procshare's manager and through multiprocessing's."""
    out = Table(f"Managers: the same calls through each manager, {seconds:g} s loops",
                ("operation (one client)", "procshare ops/s", "mp ops/s", RATIO),
                baseline="multiprocessing's manager")  # fmt: skip
    for name, ps, mp in rows:
        out.add(name, f"{ps:,.0f}", f"{mp:,.0f}", speedup(ps, mp))
    return out
