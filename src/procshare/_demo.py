"""The article's counter experiment, replayed with real processes.

N processes each add 1 to a shared count M times.  A Manager Value updated
with ``v.value += 1`` loses updates (read and write are two round trips); a
Manager Lock fixes it slowly; procshare's ``v += 1`` and Counter are exact
without a lock.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._counter import Counter
from ._value import Value


def _manager_no_lock(v: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        v.value += 1


def _locked_value(v: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            v.value += 1


def _atomic(v: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        v += 1


@dataclass
class Row:
    implementation: str
    procs: int
    incs: int
    got: int
    seconds: float

    @property
    def expected(self) -> int:
        return self.procs * self.incs

    @property
    def lost(self) -> int:
        return self.expected - self.got


def _run(
    ctx: Any,
    label: str,
    make: Callable[[], tuple[Any, Any]],
    work: Callable[[Any, Any, int], None],
    procs: int,
    incs: int,
) -> Row:
    value, lock = make()
    workers = [ctx.Process(target=work, args=(value, lock, incs)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    seconds = time.perf_counter() - t0
    failed = [p.exitcode for p in workers if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{label}: {len(failed)} worker(s) failed, exit codes {failed}")
    return Row(label, procs, incs, int(value.value), seconds)


def counter_rows(procs: int, incs: int, start_method: str | None = None) -> list[Row]:
    """Run every implementation of the counter experiment and return one row each."""
    ctx = mp.get_context(start_method)
    with ctx.Manager() as manager:
        cases: list[tuple[str, Callable[[], tuple[Any, Any]], Callable[[Any, Any, int], None]]] = [
            ("multiprocessing Manager Value, no lock", lambda: (manager.Value("i", 0), None),
             _manager_no_lock),
            ("multiprocessing Manager Value + Manager Lock",
             lambda: (manager.Value("i", 0), manager.Lock()), _locked_value),
            ("multiprocessing.Value + get_lock()", _mp_value(ctx), _locked_value),
            ("procshare Value, v += 1", lambda: (Value("i", 0), None), _atomic),
            ("procshare Value + procshare Lock", _ps_locked, _locked_value),
            ("procshare Counter, c += 1", lambda: (Counter(), None), _atomic),
        ]  # fmt: skip
        return [_run(ctx, label, make, work, procs, incs) for label, make, work in cases]


def _mp_value(ctx: Any) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        v = ctx.Value("i", 0)
        return v, v.get_lock()

    return make


def _ps_locked() -> tuple[Any, Any]:
    v = Value("i", 0)
    return v, v.get_lock()


def format_rows(rows: list[Row]) -> str:
    """The rows as a table, with each time's ratio to the Manager + Lock row."""
    base = next((r.seconds for r in rows if "Manager Lock" in r.implementation), None)
    head = ("implementation", "procs x incs", "expected", "got", "lost", "seconds", "vs Mgr+Lock")
    table = [head]
    for r in rows:
        ratio = f"{base / r.seconds:.1f}x faster" if base and r.seconds > 0 else "-"
        table.append(
            (r.implementation, f"{r.procs} x {r.incs}", str(r.expected), str(r.got),
             str(r.lost), f"{r.seconds:.3f}", ratio)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(procs: int, incs: int, start_method: str | None) -> int:
    print(f"The article's counter: {procs} processes each add 1, {incs} time(s).\n")
    rows = counter_rows(procs, incs, start_method)
    print(format_rows(rows))
    exact = [r for r in rows if r.implementation.startswith("procshare")]
    ok = all(r.lost == 0 for r in exact)
    print("\nprocshare rows exact:", "yes" if ok else "NO")
    return 0 if ok else 1
