"""Many small objects in one process: how fast they are made, and what each costs in
shared memory and in mappings, beside multiprocessing's Value, RawValue and Lock.

Each case runs in a fresh forked process, which makes its objects, keeps them all,
checks that they work (every counter incremented once and summed, exactly; every
hundredth nested List or Dict written and read back), and reports the shared
mappings it gained (/proc/self/maps: their number, and the memory /dev/shm holds
for them).  Nested Lists and
Dicts are kept in one Dict, as a List per user would be: their handles are dropped.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from ..table import RATIO, Table, speedup
from ._runner import ctx

BASELINE = "multiprocessing.Value('q')"


def _shared_maps() -> tuple[int, int]:
    """(number, bytes of memory) of this process's shared mappings.  A mapped file that
    is still named counts the memory /dev/shm holds for it (a file's pages take memory
    only once backed); any other mapping counts its whole size."""
    count = 0
    spans: dict[str, int] = {}
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if fields[1].endswith("s"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                path = fields[5].strip() if len(fields) == 6 else f"{lo:x}"
                count, spans[path] = count + 1, spans.get(path, 0) + hi - lo
    size = 0
    for path, mapped in spans.items():
        try:
            size += min(mapped, os.stat(path).st_blocks * 512)
        except OSError:  # deleted, or no file: all of it
            size += mapped
    return count, size


def _counted(kept: list[Any]) -> bool:
    """Increment every object once: whether they then sum to exactly their number."""
    for obj in kept:
        obj.value += 1
    return bool(sum(obj.value for obj in kept) == len(kept))


class _Nested:
    """Makes objects into one Dict, each under its number (the handle is dropped), and
    checks a sample: put(obj, n) then get(obj) == n through the outer Dict."""

    def __init__(self, make: Callable[[], Any], put: Callable[[Any, int], None],
                 get: Callable[[Any], int]) -> None:  # fmt: skip
        self.make, self.put, self.get = make, put, get
        self.outer: Any = None
        self.made = 0

    def __call__(self) -> int:
        if self.outer is None:
            import procshare

            self.outer = procshare.Dict()
        key = self.made = self.made + 1
        self.outer[key] = self.make()
        return key

    def check(self, kept: list[int]) -> bool:
        sample = kept[::100]
        for key in sample:
            self.put(self.outer[key], key)
        return all(self.get(self.outer[key]) == key for key in sample)


def _cases() -> list[tuple[str, Callable[[], Any], Callable[[list[Any]], bool] | None]]:
    """(label, make one object, how to check the objects made, if they can be)."""
    import procshare

    nested_list = _Nested(procshare.List, lambda o, n: o.append(n), lambda o: o[-1])
    nested_dict = _Nested(procshare.Dict, lambda o, n: o.__setitem__("n", n), lambda o: o["n"])
    return [
        ("procshare Counter()", procshare.Counter, _counted),
        ("procshare Value('q')", lambda: procshare.Value("q", 0), _counted),
        ("procshare Lock()", procshare.Lock, None),
        ("procshare Event()", procshare.Event, None),
        ("procshare List() in a Dict", nested_list, nested_list.check),
        ("procshare Dict() in a Dict", nested_dict, nested_dict.check),
        (BASELINE, lambda: multiprocessing.Value("q", 0), _counted),
        ("multiprocessing.RawValue('q')", lambda: multiprocessing.RawValue("q", 0), _counted),
        ("multiprocessing.Lock()", multiprocessing.Lock, None),
    ]


def _make(index: int, n: int, out: Any) -> None:
    """In a fresh process: make n objects of case index and report (seconds, mappings,
    shared bytes, whether they passed their check)."""
    _label, make, check = _cases()[index]
    gc.collect()  # what the parent left to collect would unmap during the count
    maps0, bytes0 = _shared_maps()
    t0 = time.perf_counter()
    kept = [make() for _ in range(n)]
    seconds = time.perf_counter() - t0
    maps1, bytes1 = _shared_maps()
    out.put((seconds, maps1 - maps0, bytes1 - bytes0, check is None or check(kept)))


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
                notes.append(f"{label}: the check failed (a count or a read was wrong)")
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
