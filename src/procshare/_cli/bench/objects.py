"""Many small objects in one process: how fast they are made, and what each costs in
shared memory and in mappings, beside multiprocessing's Value, RawValue and Lock.

Each case runs in a fresh forked process, which makes its objects, keeps them all,
counts how they work (every counter incremented once and summed, exactly), and
reports the shared mappings it gained (/proc/self/maps: their number and size).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

from ..table import RATIO, Table, speedup
from ._runner import ctx

BASELINE = "multiprocessing.Value('q')"


def _shared_maps() -> tuple[int, int]:
    """(number, total bytes) of this process's shared mappings."""
    count = size = 0
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split(None, 2)[:2]
            if perms.endswith("s"):
                lo, hi = (int(x, 16) for x in span.split("-"))
                count, size = count + 1, size + hi - lo
    return count, size


def _cases() -> list[tuple[str, Callable[[], Any], bool]]:
    """(label, make one object, whether it counts: made objects are incremented and summed)."""
    import procshare

    return [
        ("procshare Counter()", procshare.Counter, True),
        ("procshare Value('q')", lambda: procshare.Value("q", 0), True),
        ("procshare Lock()", procshare.Lock, False),
        ("procshare Event()", procshare.Event, False),
        (BASELINE, lambda: multiprocessing.Value("q", 0), True),
        ("multiprocessing.RawValue('q')", lambda: multiprocessing.RawValue("q", 0), True),
        ("multiprocessing.Lock()", multiprocessing.Lock, False),
    ]


def _make(index: int, n: int, out: Any) -> None:
    """In a fresh process: make n objects of case index and report (seconds, mappings,
    shared bytes, whether the count was exact)."""
    _label, make, counts = _cases()[index]
    maps0, bytes0 = _shared_maps()
    t0 = time.perf_counter()
    kept = [make() for _ in range(n)]
    seconds = time.perf_counter() - t0
    maps1, bytes1 = _shared_maps()
    exact = True
    if counts:
        for obj in kept:
            obj.value += 1
        exact = sum(obj.value for obj in kept) == n
    out.put((seconds, maps1 - maps0, bytes1 - bytes0, exact))


def run(n: int, repeats: int) -> tuple[list[tuple[str, int, float, float, float]], list[str]]:
    """(case, objects, made/s, shared bytes per object, mappings per 1,000 objects) medians."""
    rows, notes = [], []
    for index, (label, _, _) in enumerate(_cases()):
        count = (
            n
            if label == "procshare Counter()"
            else n // 5
            if "procshare" in label
            else (min(n // 5, 20_000))
        )
        runs = []
        for _ in range(repeats):
            out = ctx.SimpleQueue()
            p = ctx.Process(target=_make, args=(index, count, out))
            p.start()
            p.join(600)
            if p.exitcode != 0:
                notes.append(f"{label}: failed at {count:,} objects (exit code {p.exitcode})")
                break
            seconds, maps, size, exact = out.get()
            if not exact:
                notes.append(f"{label}: the count was not exact")
            runs.append((count / seconds, size / count, maps * 1000 / count))
        if runs:
            rows.append((label, count, *(statistics.median(r[i] for r in runs) for i in range(3))))
    notes.append("procshare's other cases make a fifth as many; multiprocessing's at most 20,000")
    return rows, notes


def table(rows: list[tuple[str, int, float, float, float]], notes: list[str]) -> Table:
    """Creation speed and the shared memory and mappings each object costs."""
    out = Table("Many small objects in one process",
                ("object", "objects", "made/s", "shared bytes each", "mappings per 1,000",
                 RATIO), baseline=BASELINE, notes=notes)  # fmt: skip
    base = next((r[2] for r in rows if r[0] == BASELINE), None)
    for label, count, rate, size, maps in rows:
        out.add(label, f"{count:,}", f"{rate:,.0f}", f"{size:,.0f}", f"{maps:.3g}",
                speedup(rate, base))  # fmt: skip
    return out
