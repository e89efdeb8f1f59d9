"""``procshare bench``: procshare and its peers measured side by side, in one run.

Each case runs a tight loop of one operation in 1 and in 2 processes (fork),
started together behind a barrier; throughput is total operations over the
span from the first start to the last finish.  Every figure is the median of
several repeats, and each is printed with its ratio to procshare Counter at
the same process count.  Unsafe cases report how many updates they lost.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._counter import Counter
from ._value import Value

_ctx = mp.get_context("fork")


# -- the loops: one operation per iteration, same shape ---------------------


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


@dataclass
class Case:
    """One implementation: how to build its state, loop on it, and read the total back."""

    name: str
    make: Callable[[], Any]
    loop: Callable[[Any, int], None]
    read: Callable[[Any], int] | None  # None: nothing to count (the floor)
    scale: float = 1.0  # fraction of the iterations this (slow) case runs


@dataclass
class Result:
    case: str
    procs: int
    ops_per_s: float
    lost: int | None


def _worker(case: Case, state: Any, n: int, barrier: Any, out: Any) -> None:
    barrier.wait()
    t0 = time.perf_counter()
    case.loop(state, n)
    out.put((t0, time.perf_counter()))


def measure_once(case: Case, procs: int, iterations: int) -> tuple[float, int]:
    """One run of case in procs processes: (operations per second, updates lost)."""
    n = max(1, int(iterations * case.scale))
    state = case.make()
    barrier, out = _ctx.Barrier(procs), _ctx.SimpleQueue()
    workers = [
        _ctx.Process(target=_worker, args=(case, state, n, barrier, out)) for _ in range(procs)
    ]
    for w in workers:
        w.start()
    spans = [out.get() for _ in workers]
    for w in workers:
        w.join()
    span = max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans)
    lost = procs * n - case.read(state) if case.read is not None else 0
    return procs * n / span, lost


def _mp_manager_value() -> Any:
    manager = _ctx.Manager()
    _managers.append(manager)
    return manager.Value("q", 0), manager.Lock()


_managers: list[Any] = []


def cases() -> list[Case]:
    def value_of(v: Any) -> int:
        return int(v.value)

    return [
        Case("procshare Counter  c += 1", Counter, _loop_iadd, value_of),
        Case("procshare Value    v += 1", lambda: Value("q", 0), _loop_iadd, value_of),
        Case("procshare Value    with get_lock(): v.value += 1", lambda: Value("q", 0),
             _loop_locked, value_of, 0.5),
        Case("mp.Value           with get_lock(): v.value += 1", lambda: _ctx.Value("q", 0),
             _loop_locked, value_of, 0.2),
        Case("mp.RawValue        v.value += 1 (unsafe)", lambda: _ctx.RawValue("q", 0),
             _loop_value_unsafe, value_of),
        Case("mp Manager Value   with Manager Lock", _mp_manager_value, _loop_manager_locked,
             lambda s: int(s[0].value), 0.002),
        Case("floor: one C call  len(b'')", lambda: b"", _loop_floor, None),
    ]  # fmt: skip


def run(iterations: int, repeats: int, procs_list: tuple[int, ...] = (1, 2)) -> list[Result]:
    """Median of repeats for every case; the repeats go round-robin over the cases so that
    drift in the machine's speed during the run affects every case alike."""
    all_cases = cases()
    rates: dict[tuple[int, int], list[float]] = {}
    lost: dict[tuple[int, int], int] = {}
    try:
        for procs in procs_list:
            for _ in range(repeats):
                for i, case in enumerate(all_cases):
                    rate, n_lost = measure_once(case, procs, iterations)
                    rates.setdefault((procs, i), []).append(rate)
                    lost[procs, i] = max(lost.get((procs, i), 0), n_lost)
    finally:
        for m in _managers:
            m.shutdown()
        _managers.clear()
    return [
        Result(case.name, procs, statistics.median(rates[procs, i]),
               lost[procs, i] if case.read is not None else None)
        for procs in procs_list
        for i, case in enumerate(all_cases)
    ]  # fmt: skip


def format_results(results: list[Result]) -> str:
    """A table of ops/s, ratio to procshare Counter at the same process count, and losses."""
    lines = [f"{'case':52} {'procs':>5} {'ops/s':>13} {'vs Counter':>11}  updates"]
    for r in results:
        base = next(x.ops_per_s for x in results if x.procs == r.procs and "Counter" in x.case)
        exact = "-" if r.lost is None else ("exact" if r.lost == 0 else f"lost {r.lost}")
        lines.append(
            f"{r.case:52} {r.procs:>5} {r.ops_per_s:>13,.0f} {r.ops_per_s / base:>10.3f}x  {exact}"
        )
    return "\n".join(lines)


def main(iterations: int, repeats: int) -> int:
    print(
        f"procshare bench: {iterations:,} iterations per process (slow peers fewer), "
        f"median of {repeats} repeats, fork start method\n"
    )
    print(format_results(run(iterations, repeats)))
    return 0
