"""The article's scenarios, replayed with real processes.

The list: ten processes append to a plain global list (the parent still
sees ``[]``: each child appended to its own copy), to a Manager list, and to
a procshare List.

The counter: N processes each add 1 to a shared count M times.  A
multiprocessing Manager Value updated with ``v.value += 1`` loses updates
(read and write are two round trips); a Manager Lock fixes it slowly.  The
same ``v.value += 1`` on procshare's Manager Value and Value is one atomic
step and loses nothing without a lock, as do ``v += 1`` and Counter.

The recommendation: exchange messages instead of sharing state.  The counter
table's last row is an actor that owns the count while the N processes tell
it +1; then producers send numbers through a queue to one consumer, which
sums them: the same program with multiprocessing.Queue and with
procshare.Queue.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._data.counter import Counter
from .._data.list import List
from .._data.queue import Queue
from .._data.value import Value
from ..actors import Actor
from ..managers import SyncManager
from .progress import Progress
from .table import RATIO, Table, show, speedup


def _value_plus_equals(v: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        v.value += 1


def _locked_value(v: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            v.value += 1


def _atomic(v: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        v += 1


class CountingActor(Actor):
    """The counter as the article advises: one process owns it, the others send +n."""

    def __init__(self) -> None:
        self.total = 0

    def on_receive(self, message: Any) -> Any:
        if message == "total":
            return self.total
        self.total += message
        return None

    def add(self, n: int) -> int:
        self.total += n
        return self.total


def _tell(ref: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        ref.tell(1)


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


def _read_value(value: Any) -> int:
    return int(value.value)


def _actor_total(ref: Any) -> int:
    """The actor's count once it has handled every message; then it stops."""
    total = int(ref.ask("total", timeout=300))
    ref.stop()
    return total


class CounterCase(NamedTuple):
    label: str
    make: Callable[[], tuple[Any, Any]]  # (the shared count, the lock or None)
    work: Callable[[Any, Any, int], None]  # what each process runs
    read: Callable[[Any], int] = _read_value  # the count it ended with


def _run(ctx: Any, case: CounterCase, procs: int, incs: int) -> Row:
    label, make, work, read = case
    value, lock = make()
    workers = [ctx.Process(target=work, args=(value, lock, incs)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    got = read(value)
    seconds = time.perf_counter() - t0  # for the actor: until it has handled every message
    failed = [p.exitcode for p in workers if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{label}: {len(failed)} worker(s) failed, exit codes {failed}")
    return Row(label, procs, incs, got, seconds)


def counter_rows(procs: int, incs: int, start_method: str | None = None) -> list[Row]:
    """Run every implementation of the counter experiment and return one row each."""
    ctx = mp.get_context(start_method)
    with ctx.Manager() as manager, SyncManager(ctx=ctx) as ps_manager:
        cases = [CounterCase(*case) for case in (
            ("multiprocessing Manager Value, no lock", lambda: (manager.Value("i", 0), None),
             _value_plus_equals),
            ("multiprocessing Manager Value + Manager Lock",
             lambda: (manager.Value("i", 0), manager.Lock()), _locked_value),
            ("multiprocessing.Value + get_lock()", _mp_value(ctx), _locked_value),
            ("procshare Manager Value, no lock", lambda: (ps_manager.Value("i", 0), None),
             _value_plus_equals),
            ("procshare Value, v.value += 1, no lock", lambda: (Value("i", 0), None),
             _value_plus_equals),
            ("procshare Value, v += 1", lambda: (Value("i", 0), None), _atomic),
            ("procshare Value + procshare Lock", _ps_locked, _locked_value),
            ("procshare Counter, c += 1", lambda: (Counter(), None), _atomic),
            ("procshare actor, tell(1)", lambda: (CountingActor.start(ctx=ctx), None), _tell,
             _actor_total),
        )]  # fmt: skip
        rows = []
        with Progress("counter", len(cases)) as progress:
            for case in cases:
                rows.append(row := _run(ctx, case, procs, incs))
                progress.done(f"{case.label}: {row.got}/{row.expected} in {row.seconds:.3f} s")
        return rows


def _mp_value(ctx: Any) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        v = ctx.Value("i", 0)
        return v, v.get_lock()

    return make


def _ps_locked() -> tuple[Any, Any]:
    v = Value("i", 0)
    return v, v.get_lock()


COUNTER_BASELINE = "multiprocessing Manager Value + Manager Lock"


def counter_table(rows: list[Row], procs: int, incs: int) -> Table:
    """The rows, each time's speed against the Manager Value + Manager Lock row's."""
    base = next((r.seconds for r in rows if r.implementation == COUNTER_BASELINE), None)
    out = Table(f"The article's counter: {procs} processes each add 1, {incs} time(s)",
                ("implementation", "procs x incs", "expected", "got", "lost", "seconds", RATIO),
                baseline=COUNTER_BASELINE)  # fmt: skip
    for r in rows:
        out.add(r.implementation, f"{r.procs} x {r.incs}", r.expected, r.got, r.lost,
                f"{r.seconds:.3f}", speedup(1 / r.seconds, base and 1 / base))  # fmt: skip
    return out


def _produce(q: Any, start: int, n: int) -> None:
    for i in range(start, start + n):
        q.put(i)
    q.put(None)


def _consume(q: Any, producers: int, result: Any) -> None:
    total, done = 0, 0
    while done < producers:
        item = q.get()
        if item is None:
            done += 1
        else:
            total += item
    result.put(total)


@dataclass
class MessageRow:
    queue: str
    producers: int
    messages: int
    sum_right: bool
    seconds: float


def message_rows(producers: int, messages: int, start_method: str | None) -> list[MessageRow]:
    """Producers send numbers to one consumer through each kind of queue; one row each."""
    ctx: Any = mp.get_context(start_method)
    expected = sum(range(producers * messages))
    rows = []
    queues = (("multiprocessing.Queue", ctx.Queue), ("procshare Queue", Queue))
    with Progress("messages", len(queues)) as progress:
        for label, make in queues:
            rows.append(_send_and_sum(ctx, make, producers, messages, expected, label))
            progress.done(f"{label}: {producers * messages:,} messages")
    return rows


def _send_and_sum(
    ctx: Any, make: Any, producers: int, messages: int, expected: int, label: str
) -> MessageRow:
    q, result = make(), ctx.SimpleQueue()
    procs = [ctx.Process(target=_produce, args=(q, p * messages, messages))
             for p in range(producers)]  # fmt: skip
    procs.append(ctx.Process(target=_consume, args=(q, producers, result)))
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    got = result.get()
    for p in procs:
        p.join()
    return MessageRow(label, producers, messages, got == expected, time.perf_counter() - t0)


def messages_table(rows: list[MessageRow]) -> Table:
    """Each queue's messages per second, against multiprocessing.Queue's."""
    first = rows[0]
    out = Table(f"Messages instead of shared state: {first.producers} producers each send "
                f"{first.messages} numbers to one consumer, which sums them",
                ("queue", "producers x messages", "sum right", "msgs/s", "seconds", RATIO),
                baseline=first.queue)  # fmt: skip
    for r in rows:
        rate = r.producers * r.messages / r.seconds
        shape, right = f"{r.producers} x {r.messages}", "yes" if r.sum_right else "NO"
        ratio = speedup(1 / r.seconds, 1 / first.seconds)
        out.add(r.queue, shape, right, f"{rate:,.0f}", f"{r.seconds:.3f}", ratio)
    return out


_GLOBAL: list[int] = []


def _append_global(i: int) -> None:
    _GLOBAL.append(i)


def _append_shared(items: Any, i: int) -> None:
    items.append(i)


def list_rows(n: int, start_method: str | None) -> list[tuple[str, list[Any], float]]:
    """n processes each append their number; (implementation, what the parent sees, seconds)."""
    ctx: Any = mp.get_context(start_method)
    rows = []
    with ctx.Manager() as manager, SyncManager(ctx=ctx) as ps_manager:
        cases: list[tuple[str, Any]] = [
            ("plain global list", None),
            ("multiprocessing Manager list", manager.list()),
            ("procshare Manager list", ps_manager.list()),
            ("procshare List", List()),
        ]
        with Progress("list", len(cases)) as progress:
            for label, shared in cases:
                t0 = time.perf_counter()
                procs = [
                    ctx.Process(target=_append_global, args=(i,)) if shared is None
                    else ctx.Process(target=_append_shared, args=(shared, i))
                    for i in range(n)
                ]  # fmt: skip
                for p in procs:
                    p.start()
                for p in procs:
                    p.join()
                seen = sorted(_GLOBAL if shared is None else list(shared))
                rows.append((label, seen, time.perf_counter() - t0))
                progress.done(label)
    return rows


def main(
    procs: int, incs: int, start_method: str | None, messages: int = 20_000, as_json: bool = False
) -> int:
    """Run the three scenarios; print their tables (or, with as_json, one JSON object)."""
    lists = list_rows(10, start_method)
    table = Table("The article's list: 10 processes each append their number",
                  ("implementation", "parent sees", "seconds"), text=2)  # fmt: skip
    for label, seen, seconds in lists:
        table.add(label, seen, f"{seconds:.3f}")
    ok = all(seen == list(range(10)) for label, seen, _ in lists if label.startswith("procshare"))
    if not as_json:
        show(table)
    rows = counter_rows(procs, incs, start_method)
    exact = [r for r in rows if r.implementation.startswith("procshare")]
    ok = ok and all(r.lost == 0 for r in exact)
    if not as_json:
        show(counter_table(rows, procs, incs))
        print("\nprocshare rows exact, those without a lock included:", "yes" if ok else "NO")
    sent = message_rows(4, messages, start_method)
    ok = ok and all(r.sum_right for r in sent)
    if not as_json:
        show(messages_table(sent))
    if as_json:
        print(json.dumps({
            "list": [{"implementation": label, "parent_sees": seen, "seconds": seconds}
                     for label, seen, seconds in lists],
            "counter": [{**dataclasses.asdict(r), "expected": r.expected, "lost": r.lost}
                        for r in rows],
            "messages": [dataclasses.asdict(r) for r in sent],
            "procshare_exact": ok,
        }, indent=1))  # fmt: skip
    return 0 if ok else 1
