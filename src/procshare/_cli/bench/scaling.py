"""Scaling: each operation in 1, 2, 4, … processes at once, as totals over all of them.

Every worker loops for the same fixed time (checking the clock every CHUNK
operations) after meeting the others at a barrier; the figure is the total
of operations over the span from the first start to the last finish, the
median of repeats.  Where the operation changes shared state, the state is
checked against the operations the workers counted ("exact", or how many
were lost).  Queues run N/2 producers against N/2 consumers; every message
is counted as it is taken.  procshare and its peers (multiprocessing,
faster-fifo, LMDB, when installed) run in the same run, round-robin.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from ..._data.counter import Counter
from ..._data.dict import Dict
from ..._data.queue import Queue
from ..._sync.lock import Lock
from ..progress import Progress
from ..table import RATIO, Table, speedup
from ._runner import ctx

CHUNK = 500  # operations between two reads of the clock
MESSAGE = b"m" * 100
KEYS = [f"key{i}" for i in range(1000)]
SMALL = "value"
KIB = "v" * 1024


@dataclass
class Scaled:
    """One implementation of one operation.

    ``start(state)`` runs in each worker (after fork, so that a peer such as
    LMDB can open its own handle there) and returns ``run(n)``, which performs
    n operations.  ``total(state)`` is what the shared state says was done.
    """

    operation: str
    name: str
    make: Callable[[ExitStack], Any]
    start: Callable[[Any], Callable[[int], None]] | None  # None: a queue (producers, consumers)
    total: Callable[[Any], int] | None = None


# -- the operations ---------------------------------------------------------------


def _incr(d: Any) -> Callable[[int], None]:
    incr = d.incr

    def run(n: int) -> None:
        for _ in range(n):
            incr("hot")

    return run


def _cas(d: Any) -> Callable[[int], None]:
    get, cas = d.__getitem__, d.compare_and_set

    def run(n: int) -> None:
        for _ in range(n):
            while True:
                old = get("hot")
                if cas("hot", old, old + 1):
                    break

    return run


def _add(counter: Any) -> Callable[[int], None]:
    add = counter.add

    def run(n: int) -> None:
        for _ in range(n):
            add(1)

    return run


def _locked(state: Any) -> Callable[[int], None]:
    lock, count = state
    acquire, release = lock.acquire, lock.release

    def run(n: int) -> None:
        for _ in range(n):
            acquire()
            count.value += 1  # a plain read and write: exact only under mutual exclusion
            release()

    return run


def _gets(get: Callable[[str], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        while n > 0:
            for k in KEYS[: min(n, len(KEYS))]:
                get(k)
            n -= len(KEYS)

    return run


def _sets(put: Callable[[str, str], object], value: str) -> Callable[[int], None]:
    def run(n: int) -> None:
        while n > 0:
            for k in KEYS[: min(n, len(KEYS))]:
                put(k, value)
            n -= len(KEYS)

    return run


def _dict_setter(value: str) -> Callable[[Any], Callable[[int], None]]:
    return lambda d: _sets(d.__setitem__, value)


def _preloaded(value: str) -> Callable[[ExitStack], Any]:
    return lambda stack: Dict(dict.fromkeys(KEYS, value))


def _lmdb_path(value: str) -> Callable[[ExitStack], Any]:
    def make(stack: ExitStack) -> Any:
        path = stack.enter_context(tempfile.TemporaryDirectory(dir="/dev/shm"))
        with _lmdb_open(path) as env, env.begin(write=True) as txn:
            for k in KEYS:
                txn.put(k.encode(), value.encode())
        return path

    return make


def _lmdb_open(path: str) -> Any:
    """An LMDB environment on /dev/shm as fast as it goes: writemap, no syncs.  Each
    worker opens its own (LMDB handles must not cross a fork)."""
    import lmdb  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return lmdb.open(path, map_size=1 << 30, writemap=True, sync=False, metasync=False)


def _lmdb_gets(path: str) -> Callable[[int], None]:
    env = _lmdb_open(path)

    def get(k: str) -> object:
        with env.begin() as txn:
            return txn.get(k.encode())

    return _gets(get)


def _lmdb_setter(value: str) -> Callable[[str], Callable[[int], None]]:
    def start(path: str) -> Callable[[int], None]:
        env = _lmdb_open(path)

        def put(k: str, v: str) -> None:
            with env.begin(write=True) as txn:
                txn.put(k.encode(), v.encode())

        return _sets(put, value)

    return start


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cases() -> tuple[list[Scaled], list[str]]:
    """Every case, and notes about peers that are not installed."""
    notes = [
        f"{m} is not installed (pip install 'procshare[bench]'): skipped"
        for m in ("faster_fifo", "lmdb")
        if not _installed(m)
    ]
    queue_op = "Queue put / get, 100 B, N/2 producers -> N/2 consumers"
    found = [
        Scaled(queue_op, "procshare Queue", lambda s: Queue(capacity=4 << 20), None),
        Scaled(queue_op, "mp.Queue", lambda s: ctx.Queue(40_000), None),
    ]
    if _installed("faster_fifo"):
        import faster_fifo  # type: ignore[import-not-found, import-untyped, unused-ignore]

        found.append(Scaled(queue_op, "faster-fifo", lambda s: faster_fifo.Queue(4 << 20), None))
    hot = "Dict incr, one hot key"
    found += [
        Scaled(hot, "procshare Dict incr", lambda s: Dict(), _incr, lambda d: int(d["hot"])),
        Scaled(hot, "procshare Counter add (one word)", lambda s: Counter(), _add,
               lambda c: int(c.value)),
        Scaled("Dict compare_and_set, one hot key", "procshare Dict compare_and_set",
               lambda s: Dict(hot=0), _cas, lambda d: int(d["hot"])),
    ]  # fmt: skip
    lock_op = "Lock acquire + release, all contending"
    found += [
        Scaled(lock_op, "procshare Lock", lambda s: (Lock(), ctx.RawValue("q", 0)), _locked,
               lambda st: int(st[1].value)),
        Scaled(lock_op, "mp.Lock", lambda s: (ctx.Lock(), ctx.RawValue("q", 0)), _locked,
               lambda st: int(st[1].value)),
    ]  # fmt: skip
    for op, value, verb in (
        ("Dict get, all readers", SMALL, "get"),
        ("Dict set, small values, all writers", SMALL, "set"),
        ("Dict set, 1 KiB rewrites, all writers", KIB, "set"),
    ):
        mine = (lambda d: _gets(d.__getitem__)) if verb == "get" else _dict_setter(value)
        found.append(Scaled(op, f"procshare Dict {verb}", _preloaded(value), mine))
        if _installed("lmdb"):
            theirs = _lmdb_gets if verb == "get" else _lmdb_setter(value)
            found.append(Scaled(op, f"LMDB {verb}", _lmdb_path(value), theirs))
    return found, notes


# -- running ----------------------------------------------------------------------


def _timed(run: Callable[[int], None], seconds: float) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    end, n = t0 + seconds, 0
    while True:
        run(CHUNK)
        n += CHUNK
        t1 = time.perf_counter()
        if t1 >= end:
            return t0, t1, n


def _worker(
    start: Callable[[Any], Callable[[int], None]],
    state: Any,
    seconds: float,
    barrier: Any,
    out: Any,
) -> None:
    run = start(state)
    barrier.wait()
    out.put(_timed(run, seconds))


def _producer(q: Any, seconds: float, barrier: Any, out: Any) -> None:
    put = q.put

    def run(n: int) -> None:
        for _ in range(n):
            put(MESSAGE, timeout=60)

    barrier.wait()
    t0, t1, n = _timed(run, seconds)
    q.put(None, timeout=60)  # one end marker per producer: every message is ahead of it
    out.put((t0, t1, -n))


def _consumer(q: Any, barrier: Any, out: Any) -> None:
    get, n = q.get, 0
    barrier.wait()
    t0 = time.perf_counter()
    while get(timeout=60) is not None:
        n += 1
    out.put((t0, time.perf_counter(), n))


def measure_once(case: Scaled, procs: int, seconds: float) -> tuple[float, int | None]:
    """(total operations per second, operations lost or None when not checked)."""
    with ExitStack() as stack:
        state = case.make(stack)
        barrier, out = ctx.Barrier(procs), ctx.SimpleQueue()
        if case.start is None:
            half = procs // 2
            workers = [ctx.Process(target=_producer, args=(state, seconds, barrier, out))
                       for _ in range(half)]  # fmt: skip
            workers += [ctx.Process(target=_consumer, args=(state, barrier, out))
                        for _ in range(half)]  # fmt: skip
        else:
            workers = [ctx.Process(target=_worker, args=(case.start, state, seconds, barrier, out))
                       for _ in range(procs)]  # fmt: skip
        for w in workers:
            w.start()
        spans = [out.get() for _ in workers]
        for w in workers:
            w.join()
        if case.start is None:
            put = -sum(n for _, _, n in spans if n < 0)
            taken = [s for s in spans if s[2] >= 0]
            done = sum(n for _, _, n in taken)
            span = max(t1 for _, t1, _ in taken) - min(t0 for t0, _, _ in spans)
            return done / span, put - done
        done = sum(n for _, _, n in spans)
        span = max(t1 for _, t1, _ in spans) - min(t0 for t0, _, _ in spans)
        lost = None if case.total is None else done - case.total(state)
        return done / span, lost


@dataclass
class Row:
    operation: str
    name: str
    rates: dict[int, float]  # procs -> median total ops/s
    lost: int | None  # the worst over every run (None: not checked)


def run(procs: list[int], seconds: float, repeats: int) -> tuple[list[Row], list[str]]:
    """Every case at every process count (queues only at even counts)."""
    found, notes = cases()
    rates: dict[tuple[int, int], list[float]] = {}
    lost: dict[int, int | None] = {}
    runs = [(n, i) for n in procs for _ in range(repeats) for i, case in enumerate(found)
            if case.start is not None or n % 2 == 0]  # fmt: skip
    with Progress("scaling", len(runs)) as progress:
        for n, i in runs:
            rate, missing = measure_once(found[i], n, seconds)
            rates.setdefault((i, n), []).append(rate)
            if missing is not None:
                lost[i] = max(lost.get(i) or 0, missing)
            progress.done(f"{found[i].name}, {n} procs: {_si(rate)}/s")
    rows = [
        Row(case.operation, case.name,
            {n: statistics.median(rates[i, n]) for n in procs if (i, n) in rates}, lost.get(i))
        for i, case in enumerate(found)
    ]  # fmt: skip
    return rows, notes


def tables(rows: list[Row], procs: list[int], notes: list[str]) -> list[Table]:
    """One table per operation: total ops/s at each process count and, where a peer ran,
    procshare's ratio to the last peer listed (the strongest: faster-fifo, LMDB, mp.Lock)."""
    out = []
    for op in dict.fromkeys(r.operation for r in rows):
        group = [r for r in rows if r.operation == op]
        peers = [r for r in group if not r.name.startswith("procshare")]
        t = Table(f"{op}: total ops/s over N processes",
                  ("implementation", *(f"N={n}" for n in procs), "counts"),
                  baseline=peers[-1].name if peers else None)  # fmt: skip
        for r in group:
            counts = "-" if r.lost is None else "exact" if r.lost == 0 else f"LOST {r.lost}"
            t.add(r.name, *(_si(r.rates[n]) if n in r.rates else "-" for n in procs), counts)
        if peers:
            mine, base = group[0].rates, peers[-1].rates
            t.add(f"{group[0].name} {RATIO}",
                  *(speedup(mine.get(n), base.get(n)) for n in procs), "")  # fmt: skip
        out.append(t)
    out[-1].notes = notes
    return out


def _si(rate: float) -> str:
    return f"{rate / 1e6:.2f} M" if rate >= 1e5 else f"{rate / 1e3:.1f} k"
