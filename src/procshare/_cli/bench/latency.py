"""Wake-up latency across two processes: ping-pong round trips, beside a Pipe's."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from ..._data.queue import Queue
from ..._data.value import RawValue
from ..._sync.condition import Condition
from ..._sync.event import Event
from ..table import RATIO, Table, speedup
from ._runner import ctx

PIPE = "mp.Pipe            send / recv"

# Each ping-pong: make() builds shared state; the child runs `pong(state, n + 1)`, the parent
# `ping(state, n + 1)`, which times all exchanges but the first (the child's start-up).


def _timed(n: int, exchange: Callable[[], object]) -> float:
    """Seconds taken by exchanges 2 to n."""
    exchange()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        exchange()
    return time.perf_counter() - t0


def _event_pong(state: Any, n: int) -> None:
    e1, e2 = state
    for _ in range(n):
        e1.wait()
        e1.clear()
        e2.set()


def _event_ping(state: Any, n: int) -> float:
    e1, e2 = state

    def exchange() -> None:
        e1.set()
        e2.wait()
        e2.clear()

    return _timed(n, exchange)


def _condition_pong(state: Any, n: int) -> None:
    cond, turn = state
    with cond:
        for _ in range(n):
            cond.wait_for(lambda: turn.value == 1)
            turn.value = 0
            cond.notify()


def _condition_ping(state: Any, n: int) -> float:
    cond, turn = state

    def exchange() -> None:
        turn.value = 1
        cond.notify()
        cond.wait_for(lambda: turn.value == 0)

    with cond:
        return _timed(n, exchange)


def _queue_pong(state: Any, n: int) -> None:
    q1, q2 = state
    for _ in range(n):
        q2.put(q1.get())


def _queue_ping(state: Any, n: int) -> float:
    q1, q2 = state
    return _timed(n, lambda: (q1.put(b"x"), q2.get()))


def _pipe_pong(state: Any, n: int) -> None:
    _, b = state
    for _ in range(n):
        b.send(b.recv())


def _pipe_ping(state: Any, n: int) -> float:
    a, _ = state
    return _timed(n, lambda: (a.send(b"x"), a.recv()))


PingPong = tuple[str, Callable[[], Any], Callable[[Any, int], None], Callable[[Any, int], float]]

CASES: list[PingPong] = [
    ("procshare Event    set -> wait", lambda: (Event(), Event()), _event_pong, _event_ping),
    ("mp.Event           set -> wait", lambda: (ctx.Event(), ctx.Event()), _event_pong,
     _event_ping),
    ("procshare Condition notify -> wait_for", lambda: (Condition(), RawValue("i", 0)),
     _condition_pong, _condition_ping),
    ("mp.Condition       notify -> wait_for", lambda: (ctx.Condition(), ctx.RawValue("i", 0)),
     _condition_pong, _condition_ping),
    ("procshare Queue    put -> get", lambda: (Queue(), Queue()), _queue_pong, _queue_ping),
    ("mp.Queue           put -> get", lambda: (ctx.Queue(), ctx.Queue()), _queue_pong,
     _queue_ping),
    (PIPE, lambda: ctx.Pipe(), _pipe_pong, _pipe_ping),
]  # fmt: skip


def round_trip(case: PingPong, n: int) -> float:
    """Seconds per round trip, over n timed exchanges."""
    _, make, pong, ping = case
    state = make()
    child = ctx.Process(target=pong, args=(state, n + 1))
    child.start()
    try:
        return ping(state, n + 1) / n
    finally:
        child.join(60)


def run(n: int, repeats: int) -> list[tuple[str, float]]:
    """(case, median round trip in seconds), repeats going round-robin over the cases."""
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for case in CASES:
            times.setdefault(case[0], []).append(round_trip(case, n))
    return [(name, statistics.median(t)) for name, t in times.items()]


def table(results: list[tuple[str, float]], n: int) -> Table:
    """Round trips of each case, against a multiprocessing Pipe's."""
    pipe = dict(results)[PIPE]
    out = Table(f"Wake-up latency: {n} round trips between two processes",
                ("ping-pong between two processes", "round trip", RATIO),
                baseline=" ".join(PIPE.split()))  # fmt: skip
    for name, t in results:
        out.add(name, f"{t * 1e6:.1f} us", speedup(1 / t, 1 / pipe))
    return out
