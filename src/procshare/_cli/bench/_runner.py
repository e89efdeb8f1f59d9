"""Throughput measurement: a loop of one operation in N processes started together.

Each run forks N workers that meet at a barrier, then time their own loops;
throughput is total operations over the span from the first start to the
last finish.  Repeats go round-robin over the cases, so drift in the
machine's speed during the run affects every case alike, and each figure is
the median of its repeats.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..progress import Progress
from ..table import RATIO, Table, speedup

ctx = mp.get_context("fork")


@dataclass
class Case:
    """One implementation: how to build its state, loop on it, and read the total back."""

    name: str
    make: Callable[[], Any]
    loop: Callable[[Any, int], None]
    read: Callable[[Any], int] | None = None  # counts the operations that took effect
    scale: float = 1.0  # fraction of the iterations this (slow) case runs
    procs: tuple[int, ...] = (1, 2)  # process counts at which the case means something


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
    barrier, out = ctx.Barrier(procs), ctx.SimpleQueue()
    workers = [
        ctx.Process(target=_worker, args=(case, state, n, barrier, out)) for _ in range(procs)
    ]
    for w in workers:
        w.start()
    spans = [out.get() for _ in workers]
    for w in workers:
        w.join()
    span = max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans)
    lost = procs * n - case.read(state) if case.read is not None else 0
    return procs * n / span, lost


def run(cases: Sequence[Case], iterations: int, repeats: int) -> list[Result]:
    """Median throughput of every case at each of its process counts."""
    rates: dict[tuple[int, int], list[float]] = {}
    lost: dict[tuple[int, int], int] = {}
    steps = repeats * sum(len(case.procs) for case in cases)
    with Progress("bench", steps) as progress:
        for procs in (1, 2):
            for _ in range(repeats):
                for i, case in enumerate(cases):
                    if procs in case.procs:
                        rate, n_lost = measure_once(case, procs, iterations)
                        rates.setdefault((procs, i), []).append(rate)
                        lost[procs, i] = max(lost.get((procs, i), 0), n_lost)
                        progress.done(f"{case.name.split('  ')[0]}, {procs} proc: {rate:,.0f}/s")
    return [
        Result(case.name, procs, statistics.median(rates[procs, i]),
               lost[procs, i] if case.read is not None else None)
        for procs in (1, 2)
        for i, case in enumerate(cases)
        if procs in case.procs
    ]  # fmt: skip


def table(title: str, results: list[Result], baseline: str | None) -> Table:
    """Ops/s of each case, its ratio to the baseline case at the same process count, and
    whether its updates were exact."""
    head = ("case", "procs", "ops/s") + ((RATIO,) if baseline else ()) + ("updates",)
    out = Table(title, head, baseline=baseline and " ".join(baseline.split()))
    for r in results:
        exact = "-" if r.lost is None else ("exact" if r.lost == 0 else f"lost {r.lost}")
        base = [x.ops_per_s for x in results if x.procs == r.procs and x.case == baseline]
        shown = (speedup(r.ops_per_s, base[0] if base else None),) if baseline else ()
        out.add(r.case, r.procs, f"{r.ops_per_s:,.0f}", *shown, exact)
    return out
