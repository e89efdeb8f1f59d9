"""Waits that are cancelled or interrupted: a wake-up always reaches a live waiter, Ctrl-C
is noticed at every wake-up, and asyncio tasks exclude each other."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from procshare import Condition, JoinableQueue, Lock, Queue, RLock, Semaphore

import workers
from conftest import wait_asleep


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def cancel_a_waiting(make_wait: Callable[[], Any]) -> None:
    """Start an awaited wait, let it sleep in its worker thread, then cancel it."""

    async def main() -> None:
        task = asyncio.ensure_future(make_wait())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def settle(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) until predicate holds: the other side is parked."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, "the waiter never parked"
        time.sleep(0.005)


def test_a_cancelled_get_does_not_swallow_the_next_message() -> None:
    q = Queue()
    cancel_a_waiting(lambda: q.get_async())
    t, got = in_thread(lambda: q.get(timeout=3))
    wait_asleep(os.getpid(), t.native_id)  # the getter sleeps beside the abandoned worker
    q.put("m")
    t.join(10)
    assert got == ["m"]


def test_a_cancelled_get_across_processes(name: str) -> None:
    q = Queue(name=name)
    cancel_a_waiting(lambda: q.get_async())
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=workers.get_into, args=(q, results))
    child.start()
    assert child.pid is not None
    wait_asleep(child.pid)
    q.put("m")
    assert results.get(timeout=10) == "m"
    child.join(10)
    q.unlink()


def test_a_cancelled_acquire_does_not_swallow_a_release() -> None:
    sem = Semaphore(0)
    cancel_a_waiting(lambda: sem.acquire_async())
    t, got = in_thread(sem.acquire)  # no timeout: blocked for good if the wake is lost
    wait_asleep(os.getpid(), t.native_id)
    sem.release()
    t.join(10)
    assert got == [True]


def test_a_cancelled_put_does_not_swallow_a_free_slot() -> None:
    q = Queue(1)
    q.put("full")
    cancel_a_waiting(lambda: q.put_async("never"))
    t, got = in_thread(lambda: q.put("next", timeout=3) or "put")
    wait_asleep(os.getpid(), t.native_id)
    assert q.get() == "full"
    t.join(10)
    assert got == ["put"] and q.get(timeout=1) == "next"


def test_a_cancelled_condition_wait_does_not_swallow_a_notify() -> None:
    cond = Condition()

    async def wait() -> None:
        async with cond:
            await cond.wait_async()

    cancel_a_waiting(wait)

    def waiter() -> bool:
        with cond:
            return cond.wait()  # no timeout: blocked for good if the notify is lost

    t, got = in_thread(waiter)
    settle(lambda: cond._n.load() == 1)
    with cond:
        cond.notify()
    t.join(10)
    assert got == [True]


@pytest.mark.parametrize("make", [RLock, Condition, Lock])
def test_async_with_excludes_the_tasks_of_one_loop(make: Callable[[], Any]) -> None:
    lock = make()
    inside, most = 0, 0

    async def task() -> None:
        nonlocal inside, most
        async with lock:
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            async with lock if make is not Lock else _nothing():  # the holder re-enters
                pass
            inside -= 1

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(task() for _ in range(5))), 30)

    asyncio.run(main())
    assert most == 1


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_condition_notify_inside_async_with() -> None:
    cond = Condition()
    ready = []

    async def consumer() -> str:
        async with cond:
            await cond.wait_for_async(lambda: ready, 10)
            return str(ready[0])

    async def producer() -> None:
        await asyncio.sleep(0.02)
        async with cond:
            ready.append("go")
            cond.notify_all()

    async def main() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(consumer(), producer()), 30)

    assert asyncio.run(main())[0] == "go"


# -- Ctrl-C ------------------------------------------------------------------------


def interrupt_repeatedly(setup: str, wait: str, signals: int = 60) -> None:
    """Run a child that repeats `wait` (which blocks for good) and reports each
    KeyboardInterrupt; send it SIGINT at seeded random moments: each must be noticed."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            {setup}
            print("ready", flush=True)
            while True:
                try:
                    {wait}
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        rng = random.Random(7)
        for i in range(signals):
            # half on a 20 ms grid (the slices a sleeper wakes at), half anywhere
            time.sleep(0.02 * rng.randint(1, 3) if i % 2 else rng.uniform(0.001, 0.05))
            child.send_signal(signal.SIGINT)
            ready, _, _ = select.select([child.stdout], [], [], 2)
            assert ready, f"signal {i} was not noticed"
            assert child.stdout.readline() == "interrupted\n"
    finally:
        child.kill()
        child.wait(10)


def test_ctrl_c_interrupts_a_blocked_lock_acquire(name: str) -> None:
    held = Lock(name=name)
    held.acquire()
    interrupt_repeatedly(
        f"import procshare; lock = procshare.Lock(name={name!r})", "lock.acquire()"
    )
    held.unlink()


def test_ctrl_c_interrupts_join(name: str) -> None:
    q = JoinableQueue(name=name)
    q.put("never done")
    interrupt_repeatedly(
        f"import procshare; q = procshare.JoinableQueue(name={name!r})", "q.join()"
    )
    q.unlink()


def test_an_interrupted_condition_waiter_gives_its_slot_back(name: str) -> None:
    cond = Condition(name=name)
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import procshare
            cond = procshare.Condition(name={name!r})
            cond.acquire()
            print("waiting", flush=True)
            try:
                cond.wait()
            except KeyboardInterrupt:
                print("interrupted", cond._lock._is_owned(), flush=True)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == "waiting\n"
        settle(lambda: cond._n.load() == 1)
        with cond:
            cond.notify()  # the child now waits to re-take the lock, which this holds
            settle(lambda: not cond._waiting())  # notified...
            wait_asleep(child.pid)  # ...and asleep on the lock
            child.send_signal(signal.SIGINT)
            assert child.wait(10) == 0
        assert child.stdout.readline() == "interrupted False\n"
        assert cond._n.load() == 0  # its slot was given back
        t, got = in_thread(lambda: _wait_once(cond))
        settle(lambda: cond._n.load() == 1)
        with cond:
            cond.notify(1)  # reaches the live waiter, not the interrupted one
        t.join(10)
        assert got == [True]
    finally:
        child.kill()
        cond.unlink()


def _wait_once(cond: Condition) -> bool:
    with cond:
        return cond.wait(10)


def test_more_than_256_waiters() -> None:
    cond = Condition()
    threads = [in_thread(lambda: _wait_once(cond)) for _ in range(300)]
    settle(lambda: cond._n.load() == 300)
    with cond:
        cond.notify_all()
    for t, got in threads:
        t.join(30)
        assert got == [True]
    small = Condition(max_waiters=2)
    small.acquire()
    waiters = [in_thread(lambda: _wait_once(small)) for _ in range(2)]
    small.release()
    settle(lambda: small._n.load() == 2)
    with small, pytest.raises(RuntimeError, match="max_waiters"):
        small.wait(1)
    with small:
        small.notify_all()
    for t, _ in waiters:
        t.join(30)
