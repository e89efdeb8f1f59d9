"""Actors: ask round trips, tells and proxy calls, beside Pykka (threads in one process)
and a multiprocessing manager's proxy of a registered class (the same call, in a server)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from multiprocessing import managers as mp_managers
from typing import Any

from ..demo import CountingActor as Tally
from ..table import RATIO, Table, speedup
from ._runner import ctx

PYKKA = "Pykka (threads)"
MANAGER = "mp manager proxy"


class _MpManager(mp_managers.BaseManager):
    pass


_MpManager.register("Tally", Tally)


def _operations(
    ask: Callable[[str], Any], call: Callable[[], Any], tell: Callable[[int], object] | None
) -> dict[str, Callable[[int], float]]:
    """The three measurements of one peer, from its ask, proxy call and tell."""
    ops = {
        "ask": lambda n: _timed(lambda: ask("total"), n),
        "proxy call": lambda n: _timed(call, n),
    }
    if tell is not None:
        ops["tell"] = lambda n: _tells(tell, lambda: ask("total"), n * 10)
    return ops


def _timed(op: Callable[[], object], n: int) -> float:
    op()  # untimed: the first call sets up the reply queue
    t0 = time.perf_counter()
    for _ in range(n):
        op()
    return n / (time.perf_counter() - t0)


def _tells(tell: Callable[[int], object], ask_total: Callable[[], Any], n: int) -> float:
    """Tells per second, counted until the actor has handled every one (checked exactly)."""
    before = ask_total()
    t0 = time.perf_counter()
    for _ in range(n):
        tell(1)
    after = ask_total()
    rate = n / (time.perf_counter() - t0)
    if after - before != n:
        raise RuntimeError(f"the actor handled {after - before} of {n} tells")
    return rate


@contextlib.contextmanager
def _peers(notes: list[str]) -> Iterator[dict[str, dict[str, Callable[[int], float]]]]:
    peers: dict[str, dict[str, Callable[[int], float]]] = {}
    with contextlib.ExitStack() as stack:
        ref = Tally.start(ctx=ctx)
        stack.callback(ref.stop)
        proxy = ref.proxy()
        peers["procshare actor"] = _operations(ref.ask, lambda: proxy.add(0).get(), ref.tell)
        try:
            import pykka  # type: ignore[import-not-found, import-untyped, unused-ignore]

            class PykkaTally(pykka.ThreadingActor):  # type: ignore[misc, unused-ignore]
                def __init__(self) -> None:
                    super().__init__()
                    self.total = 0

                on_receive = Tally.on_receive
                add = Tally.add

            pref = PykkaTally.start()
            stack.callback(pref.stop)
            pproxy = pref.proxy()
            peers[PYKKA] = _operations(pref.ask, lambda: pproxy.add(0).get(), pref.tell)
        except ImportError:
            notes.append("Pykka is not installed (pip install 'procshare[bench]'): skipped")
        manager = stack.enter_context(_MpManager(ctx=ctx))
        tally = manager.Tally()  # type: ignore[attr-defined]
        peers[MANAGER] = _operations(tally.on_receive, lambda: tally.add(0), None)
        yield peers


def run(n: int, repeats: int) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(peer, operation, ops/s) medians of repeats; slow peers run n // 10 operations."""
    notes: list[str] = []
    rates: dict[tuple[str, str], list[float]] = {}
    with _peers(notes) as peers:
        for _ in range(repeats):
            for peer, ops in peers.items():
                count = n if peer != MANAGER else max(10, n // 10)
                for op, measure in ops.items():
                    rates.setdefault((peer, op), []).append(measure(count))
    return [(p, o, statistics.median(r)) for (p, o), r in rates.items()], notes


def table(rows: list[tuple[str, str, float]], notes: list[str], n: int) -> Table:
    """Each peer's operations, against Pykka's (the manager proxy's where Pykka is missing)."""
    peers = {peer for peer, _, _ in rows}
    baseline = PYKKA if PYKKA in peers else MANAGER
    base = {op: rate for peer, op, rate in rows if peer == baseline}
    out = Table(f"Actors: {n:,} asks and proxy calls, {10 * n:,} tells (manager proxies 1/10)",
                ("peer", "operation", "ops/s", "us/op", RATIO), text=2, baseline=baseline,
                notes=notes)  # fmt: skip
    for peer, op, rate in rows:
        out.add(peer, op, f"{rate:,.0f}", f"{1e6 / rate:.1f}", speedup(rate, base.get(op)))
    return out
