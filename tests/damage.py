"""A fuzzer of damaged segments: build objects of every kind, overwrite random bytes of
their segments (header or body) with fixed seeds, then attach and use them in a fresh
interpreter, which must end normally: every damage raises a clean exception or goes
unnoticed, never a crash or a hang.  Used by test_damage.py, also under sanitizers."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

import procshare
from procshare._shm.segment import HEADER_SIZE

SHM = "/dev/shm/procshare."

#: kind -> (open(name): create or attach a populated object, use(obj): operations
#: that cannot block for long)
KINDS: dict[str, tuple[Callable[[str], Any], Callable[[Any], None]]] = {}


def kind(open_: Callable[[str], Any]) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    def register(use: Callable[[Any], None]) -> Callable[[Any], None]:
        KINDS[use.__name__] = (open_, use)
        return use

    return register


def attempt(*steps: Callable[[], object]) -> None:
    """Run each step; clean exceptions are what damage may cause."""
    for step in steps:
        with contextlib.suppress(Exception):  # any clean exception is acceptable here
            step()


@kind(lambda n: procshare.Value("q", 7, name=n))
def value(v: Any) -> None:
    attempt(
        lambda: v.value,
        lambda: v.__iadd__(1),
        lambda: v.store(3),
        lambda: v.get_lock().acquire(timeout=0.02),
    )


@kind(lambda n: procshare.Array("i", range(16), name=n))
def array(a: Any) -> None:
    attempt(lambda: a[:], lambda: a.__setitem__(3, 5), lambda: a.fetch_add(2, 1), lambda: len(a))


@kind(lambda n: procshare.Counter(5, name=n))
def counter(c: Any) -> None:
    attempt(lambda: c.value, lambda: c.__iadd__(2), lambda: c.reset())


def _lock_ops(lock: Any) -> None:
    attempt(lambda: lock.locked(), lambda: lock.acquire(timeout=0.02) and lock.release())


@kind(lambda n: procshare.Lock(name=n))
def lock(lk: Any) -> None:
    _lock_ops(lk)


@kind(lambda n: procshare.RLock(name=n))
def rlock(lk: Any) -> None:
    _lock_ops(lk)


@kind(lambda n: procshare.Semaphore(2, name=n))
def semaphore(s: Any) -> None:
    attempt(lambda: s.get_value(), lambda: s.acquire(timeout=0.02), lambda: s.release())


@kind(lambda n: procshare.BoundedSemaphore(2, name=n))
def bounded_semaphore(s: Any) -> None:
    semaphore(s)


@kind(lambda n: procshare.Condition(name=n))
def condition(c: Any) -> None:
    def cycle() -> None:
        if c.acquire(timeout=0.02):
            try:
                c.notify_all()
                c.wait(0.01)
            finally:
                c.release()

    attempt(cycle, lambda: repr(c))


@kind(lambda n: procshare.Event(name=n))
def event(e: Any) -> None:
    attempt(e.is_set, lambda: e.wait(0.01), e.set, e.clear)


@kind(lambda n: procshare.Barrier(1, name=n))
def barrier(b: Any) -> None:
    attempt(lambda: b.wait(0.05), lambda: b.n_waiting, lambda: b.broken, b.reset)


def _queue_ops(q: Any) -> None:
    attempt(
        q.qsize,
        lambda: q.get(timeout=0.02),
        lambda: q.put(b"x" * 30, timeout=0.02),
        lambda: q.get_many(10, timeout=0.02),
        lambda: q.put_many([1, 2, 3], timeout=0.02),
        lambda: q.get(timeout=0.02),
    )


def _filled_queue(cls: Any, n: str) -> Any:
    q = cls(name=n, capacity=1024)
    if q.qsize() == 0:  # just created
        for i in range(12):
            q.put(("message", i) if i % 2 else b"m" * i)
        q.get()
    return q


@kind(lambda n: _filled_queue(procshare.Queue, n))
def queue(q: Any) -> None:
    _queue_ops(q)


@kind(lambda n: _filled_queue(procshare.SimpleQueue, n))
def simple_queue(q: Any) -> None:
    _queue_ops(q)


@kind(lambda n: _filled_queue(procshare.JoinableQueue, n))
def joinable_queue(q: Any) -> None:
    _queue_ops(q)
    attempt(q.task_done, lambda: q.join(0.02))


@kind(lambda n: procshare.Dict({f"k{i}": i if i % 3 else ("v", i) for i in range(40)}, name=n))
def dict_(d: Any) -> None:
    attempt(
        lambda: d.get("k5"),
        lambda: len(d),
        lambda: list(d.items()),
        lambda: d.__setitem__("new", [1, 2]),
        lambda: d.incr("k1"),
        lambda: d.pop("k2"),
        lambda: d.update({f"g{i}": "x" * i for i in range(200)}),  # grows
        lambda: d.popitem(),
    )


@kind(lambda n: procshare.List([i if i % 3 else ("v", i) for i in range(40)], name=n))
def list_(lst: Any) -> None:
    attempt(
        lambda: lst[3],
        lambda: len(lst),
        lambda: list(lst),
        lambda: lst.append("x"),
        lambda: lst.pop(),
        lambda: lst.pop(0),
        lambda: lst.__setitem__(1, b"y" * 50),
        lambda: lst.insert(0, 9),
        lambda: lst.sort(key=repr),
        lambda: lst.extend(range(300)),  # grows
        lambda: lst.remove(9),
    )


def files(name: str) -> list[str]:
    """The segment files of the object name (its tables too)."""
    prefix = os.path.basename(SHM) + name
    return sorted(
        "/dev/shm/" + f for f in os.listdir("/dev/shm") if f == prefix or f.startswith(prefix + "~")
    )


def damage(path: str, rng: random.Random, in_header: bool) -> None:
    """Overwrite a few random runs of bytes of the file: in its segment header, or in its
    body, half of the time near the start where each structure keeps its counters."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for _ in range(rng.randint(1, 4)):
            if in_header:
                lo, hi = 0, HEADER_SIZE
            elif rng.random() < 0.5:
                lo, hi = HEADER_SIZE, min(size, HEADER_SIZE + 128)
            else:
                lo, hi = HEADER_SIZE, size
            at = rng.randrange(lo, max(lo + 1, hi - 1))
            f.seek(at)
            run = rng.choice([1, 2, 4, 8, 16])
            data = rng.choice([
                bytes(rng.randrange(256) for _ in range(run)),
                b"\xff" * run,
                b"\x00" * run,
                rng.randrange(1, 1 << 20).to_bytes(8, "little")[:run],
            ])  # fmt: skip
            f.write(data)


def prepare(kind_name: str, prefix: str, seeds: range) -> list[str]:
    """Build one object per seed and damage its segments; their names."""
    open_, _ = KINDS[kind_name]
    names = []
    for seed in seeds:
        rng = random.Random(f"{kind_name}-{seed}")
        name = f"{prefix}-{seed}"
        obj = open_(name)
        paths = files(name)
        for path in paths:
            if rng.random() < 0.8 or path == paths[-1]:
                damage(path, rng, in_header=rng.random() < 0.25)
        del obj
        names.append(name)
    return names


def main(kind_name: str, names: list[str]) -> None:
    """In a fresh interpreter: attach and use every damaged object, reporting progress."""
    open_, use = KINDS[kind_name]
    for name in names:
        print("case", name, flush=True)
        try:
            obj = open_(name)  # attaches: the object exists
        except Exception:  # a clean refusal to attach
            continue
        try:
            use(obj)
        except Exception:
            traceback.print_exc()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
