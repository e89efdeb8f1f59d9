"""``procshare bench``: procshare and its peers measured side by side, in one run.

Nine sections, and a tenth on request: increments of a shared count (ratio to procshare Counter),
lock acquire + release pairs (ratio to procshare Lock), messages through a
queue (ratio to multiprocessing.Queue, faster-fifo beside them when
installed), shared dict and list operations (against Manager proxies, and
UltraDict and LMDB when installed), a large List's moves and scans beside a plain
list's, the same calls through procshare's manager
and multiprocessing's (registered classes included), actors beside Pykka and manager
proxies, wake-up latency between two
processes (ratio to a multiprocessing Pipe round trip), many small objects made and
kept in one process (beside multiprocessing.Value), and with ``--procs``
the scaling view: each contended operation in 1, 2, 4, … processes at once.  Every
figure is a median of repeats; peers run in the same process tree.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..table import show
from . import (
    _runner,
    actors,
    counters,
    dicts,
    latency,
    lists,
    locks,
    managers,
    objects,
    plot,
    queues,
    redis,
    scaling,
)
from .queues import BATCH


def main(
    iterations: int,
    repeats: int,
    only: str | None = None,
    procs: list[int] | None = None,
    seconds: float = 0.5,
    json_path: str | None = None,
    plot_path: str | None = None,
) -> int:
    """Run the sections asked for, print their tables, and with json_path write their raw
    figures there too; with plot_path, draw them."""
    figures: dict[str, Any] = {}
    print(
        f"procshare bench: {iterations:,} iterations per process (slow peers fewer), "
        + (f"median of {repeats} repeats" if repeats > 1 else "one run of each case (no median)")
        + ", fork start method"
    )
    if only in (None, "counters"):
        started: list[Any] = []
        try:
            results = _runner.run(counters.cases(started), iterations, repeats)
        finally:
            for m in started:
                m.shutdown()
        figures["counters"] = results
        show(_runner.table("Increments of one shared count", results, counters.BASELINE))
    if only in (None, "locks"):
        results = figures["locks"] = _runner.run(locks.cases(), iterations, repeats)
        title = "Lock acquire + release pairs (2 processes: both contend for one lock)"
        show(_runner.table(title, results, locks.BASELINE))
    if only in (None, "queues"):
        n = max(BATCH, iterations // 10 // BATCH * BATCH)
        rows, notes = figures["queues"] = queues.run(n, repeats)
        show(queues.table(rows, notes, n))
    if only in (None, "dicts"):
        n = max(1_000, iterations // 10)
        rows, notes = figures["dicts"] = dicts.run(n, repeats)
        for table in dicts.tables(rows, notes, n):
            show(table)
        results = _runner.run([dicts.incr_case()], max(100, iterations // 20), repeats)
        figures["dict_incr"] = results
        show(_runner.table("Dict incr on one hot key", results, None))
    if only in (None, "lists"):
        n = max(1_000, min(iterations, 1_000_000))
        rows, notes = figures["lists"] = lists.run(n, repeats)
        show(lists.table(rows, notes, n))
    if only in (None, "managers"):
        seconds_each = min(0.5, max(0.02, iterations / 4_000_000))
        figures["managers"] = managers.run(seconds_each, repeats)
        show(managers.table(figures["managers"], seconds_each))
    if only in (None, "actors"):
        n = max(100, iterations // 100)
        rows, notes = figures["actors"] = actors.run(n, repeats)
        show(actors.table(rows, notes, n))
    if only in (None, "latency"):
        n = max(10, iterations // 500)
        figures["latency"] = latency.run(n, repeats)
        show(latency.table(figures["latency"], n))
    if only in (None, "objects"):
        made, notes = figures["objects"] = objects.run(max(1_000, iterations), min(repeats, 3))
        show(objects.table(made, notes))
    if only == "redis":
        seconds_each = min(0.5, max(0.02, iterations / 4_000_000))
        pairs, notes = figures["redis"] = redis.run(seconds_each, repeats)
        show(redis.table(pairs, notes, seconds_each))
    if procs and only in (None, "scaling"):
        print(f"\nScaling: {seconds:g} s loops in {', '.join(map(str, procs))} processes at once")
        scaled, notes = figures["scaling"] = scaling.run(procs, seconds, repeats)
        for table in scaling.tables(scaled, procs, notes):
            show(table)
    if plot_path is not None:
        plot.plot(figures, plot_path)
        print(f"\nplotted to {plot_path}")
    if json_path is not None:
        run = {"iterations": iterations, "repeats": repeats, "procs": procs, "seconds": seconds}
        with open(json_path, "w") as f:
            json.dump({"run": run, "sections": figures}, f, default=_plain, indent=1)
    return 0


def _plain(obj: Any) -> Any:
    """What json.dump cannot write itself: dataclass rows as dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not a figure")
