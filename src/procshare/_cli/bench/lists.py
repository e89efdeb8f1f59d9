"""A large List beside a plain list: the operations that move elements, those that scan,
and extend, on n items each, timed one call at a time.

Both start as ``range(n)``; each operation runs on both with the same arguments
(moves are undone untimed, so every call sees n items), and their contents are
compared at the end, exactly.  The figure is the time of one call, the median of
the repeats; the ratio is the plain list's time over the List's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from ..._data.list import List
from ..table import RATIO, Table, speedup

BASELINE = "list"
IMPLEMENTATIONS = ("procshare List", BASELINE)
MOVES = 10  # calls timed of each move, per repeat
SCANS = 3  # calls timed of each scan, per repeat


def _timed(call: Callable[[int], object], calls: int) -> float:
    """Seconds per call of call(0), call(1), …"""
    t0 = time.perf_counter()
    for j in range(calls):
        call(j)
    return (time.perf_counter() - t0) / calls


def _once(seq: Any, make: Callable[[], Any], n: int) -> dict[str, float]:
    """Time each operation on seq (holding range(n)) and leave it holding range(n) again."""
    far = max(0, n - MOVES)  # seq[far:] are removed from the end, then appended back
    times = {
        "insert(0, x)": _timed(lambda j: seq.insert(0, -1), MOVES),
        "pop(0)": _timed(lambda j: seq.pop(0), MOVES),  # the inserts undone
        "del l[0]": _timed(lambda j: seq.__delitem__(0), MOVES),
    }
    for j in reversed(range(MOVES)):
        seq.insert(0, j)
    times["remove(x), x near the front"] = _timed(lambda j: seq.remove(10 + j), MOVES)
    for j in range(MOVES):
        seq.insert(10 + j, 10 + j)
    times["remove(x), x near the end"] = _timed(lambda j: seq.remove(n - 1 - j), MOVES)
    for j in range(far, n):
        seq.append(j)
    reference = list(range(n))
    times |= {
        "x in l, x last": _timed(lambda j: n - 1 in seq, SCANS),
        "x in l, x absent": _timed(lambda j: -1 in seq, SCANS),
        "index(x), x last": _timed(lambda j: seq.index(n - 1), SCANS),
        "count(x)": _timed(lambda j: seq.count(n // 2), SCANS),
        "l == list": _timed(lambda j: seq == reference, SCANS),
    }
    fresh = make()
    times["extend(range(n)), new"] = _timed(lambda j: fresh.extend(range(n)), 1)
    return times


def run(n: int, repeats: int) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(implementation, operation, median seconds per call) rows, and notes."""
    notes: list[str] = []
    seqs: dict[str, tuple[Any, Callable[[], Any]]] = {
        IMPLEMENTATIONS[0]: (List(range(n)), List),
        BASELINE: (list(range(n)), list),
    }
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for label, (seq, make) in seqs.items():
            for op, seconds in _once(seq, make, n).items():
                runs.setdefault((label, op), []).append(seconds)
    if seqs[IMPLEMENTATIONS[0]][0].copy() != seqs[BASELINE][0]:
        notes.append("procshare List: the contents differ from the list's after the run")
    ops = dict.fromkeys(op for _, op in runs)  # each operation's rows side by side
    return [(label, op, statistics.median(runs[label, op])) for op in ops
            for label in IMPLEMENTATIONS], notes  # fmt: skip


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:,.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:,.3g} us"


def table(rows: list[tuple[str, str, float]], notes: list[str], n: int) -> Table:
    """One row per operation: each implementation's time per call, and the ratio."""
    out = Table(f"Lists that move elements: {n:,} items, time per call",
                ("operation", *IMPLEMENTATIONS, RATIO), baseline=BASELINE,
                notes=notes)  # fmt: skip
    times = {(label, op): seconds for label, op, seconds in rows}
    for op in dict.fromkeys(op for _, op, _ in rows):
        mine, theirs = (times.get((label, op)) for label in IMPLEMENTATIONS)
        out.add(op, *(_duration(t) if t else "-" for t in (mine, theirs)),
                speedup(1 / mine if mine else None, 1 / theirs if theirs else None))  # fmt: skip
    return out
