"""Messages through a queue between processes: procshare against multiprocessing and
faster-fifo (when installed), one at a time and in batches."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..._data.queue import Queue
from ..table import RATIO, Table, speedup
from ._runner import ctx

MESSAGE = b"m" * 100
BATCH = 100


@dataclass
class QueueCase:
    name: str
    make: Callable[[], Any]
    batched: bool = False


def _faster_fifo() -> Any | None:
    try:
        import faster_fifo  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    return faster_fifo


def cases() -> tuple[list[QueueCase], list[str]]:
    """The cases, and notes about peers that are not installed."""
    found = [
        QueueCase("procshare Queue   put / get", lambda: Queue(capacity=4 << 20)),
        QueueCase("mp.Queue          put / get", ctx.Queue),
        QueueCase("procshare Queue   put_many / get_many", lambda: Queue(capacity=4 << 20), True),
    ]
    notes = []
    ff = _faster_fifo()
    if ff is None:
        notes.append("faster-fifo is not installed (pip install 'procshare[bench]'): skipped")
    else:
        found.insert(2, QueueCase("faster-fifo       put / get", lambda: ff.Queue(4 << 20)))
        found.append(QueueCase("faster-fifo       put_many / get_many", lambda: ff.Queue(4 << 20),
                               True))  # fmt: skip
    return found, notes


def _producer(q: Any, n: int, batched: bool, barrier: Any) -> None:
    barrier.wait()
    if batched:
        batch = [MESSAGE] * BATCH
        for _ in range(n // BATCH):
            q.put_many(batch, timeout=60)
    else:
        for _ in range(n):
            q.put(MESSAGE, timeout=60)


def _consumer(q: Any, n: int, batched: bool, barrier: Any, out: Any) -> None:
    barrier.wait()
    t0 = time.perf_counter()
    got = 0
    while got < n:
        if batched:
            got += len(q.get_many(max_messages_to_get=n - got, timeout=60)
                       if _is_ff(q) else q.get_many(n - got, timeout=60))  # fmt: skip
        else:
            q.get(timeout=60)
            got += 1
    out.put((t0, time.perf_counter(), got))


def _is_ff(q: Any) -> bool:
    return type(q).__module__.startswith("faster_fifo")


def measure_once(case: QueueCase, producers: int, consumers: int, n: int) -> float:
    """Messages per second from producers to consumers, n messages per producer."""
    q = case.make()
    total = producers * n
    share = [total // consumers + (i < total % consumers) for i in range(consumers)]
    barrier, out = ctx.Barrier(producers + consumers), ctx.SimpleQueue()
    procs = [ctx.Process(target=_producer, args=(q, n, case.batched, barrier))
             for _ in range(producers)]  # fmt: skip
    procs += [ctx.Process(target=_consumer, args=(q, s, case.batched, barrier, out))
              for s in share]  # fmt: skip
    for p in procs:
        p.start()
    spans: list[tuple[float, float, int]] = [out.get() for _ in share]
    for p in procs:
        p.join()
    if sum(got for _, _, got in spans) != total:
        raise RuntimeError(f"{case.name}: messages lost")
    return total / (max(t1 for _, t1, _ in spans) - min(t0 for t0, _, _ in spans))


def run(n: int, repeats: int) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(case, producers x consumers, median msgs/s) for 1->1 and 2->2."""
    found, notes = cases()
    rates: dict[tuple[str, str], list[float]] = {}
    for shape in ((1, 1), (2, 2)):
        for _ in range(repeats):
            for case in found:
                rate = measure_once(case, shape[0], shape[1], n)
                rates.setdefault((case.name, f"{shape[0]} -> {shape[1]}"), []).append(rate)
    return [(c, s, statistics.median(r)) for (c, s), r in rates.items()], notes


BASELINE = "mp.Queue put / get"


def table(results: list[tuple[str, str, float]], notes: list[str], n: int) -> Table:
    """Messages per second of each case and shape, against multiprocessing.Queue's."""
    out = Table(
        f"Messages through a queue: {n:,} 100-byte messages per producer",
        ("case", "shape", "msgs/s", RATIO),
        text=2,
        baseline=BASELINE,
        notes=notes,
    )
    for name, shape, rate in results:
        base = next(r for c, s, r in results if s == shape and " ".join(c.split()) == BASELINE)
        out.add(name, shape, f"{rate:,.0f}", speedup(rate, base))
    return out
