"""``procshare bench``: procshare and its peers measured side by side, in one run.

Four sections: increments of a shared count (ratio to procshare Counter),
lock acquire + release pairs (ratio to procshare Lock), messages through a
queue (ratio to multiprocessing.Queue, faster-fifo beside them when
installed), and wake-up latency between two processes (ratio to a
multiprocessing Pipe round trip).  Every
figure is a median of repeats; peers run in the same process tree.
"""

from __future__ import annotations

from typing import Any

from . import _runner, counters, latency, locks, queues
from .queues import BATCH

SECTIONS = ("counters", "locks", "queues", "latency")


def main(iterations: int, repeats: int, only: str | None = None) -> int:
    print(
        f"procshare bench: {iterations:,} iterations per process (slow peers fewer), "
        f"median of {repeats} repeats, fork start method"
    )
    if only in (None, "counters"):
        managers: list[Any] = []
        try:
            results = _runner.run(counters.cases(managers), iterations, repeats)
        finally:
            for m in managers:
                m.shutdown()
        print("\nIncrements of one shared count\n")
        print(_runner.format_results(results, counters.BASELINE))
    if only in (None, "locks"):
        results = _runner.run(locks.cases(), iterations, repeats)
        print("\nLock acquire + release pairs (2 processes: both contend for one lock)\n")
        print(_runner.format_results(results, locks.BASELINE))
    if only in (None, "queues"):
        n = max(BATCH, iterations // 10 // BATCH * BATCH)
        print(f"\nMessages through a queue: {n:,} per producer\n")
        print(queues.format_results(*queues.run(n, repeats)))
    if only in (None, "latency"):
        n = max(10, iterations // 500)
        print(f"\nWake-up latency: {n} round trips between two processes\n")
        print(latency.format_results(latency.run(n, repeats)))
    return 0
