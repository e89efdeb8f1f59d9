"""Condition: exact notify counts, timeouts, wait_for, dead waiters and holders, asyncio."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
import time
from typing import Any

import pytest

from procshare import Condition, Counter, Lock, RLock, Value

import workers


def wait_until(predicate: Any, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def start_waiters(ctx: Any, cond: Any, n: int, timeout: float = 30) -> tuple[list[Any], Any, Any]:
    woken, ready = Counter(), Counter()
    procs = [
        ctx.Process(target=workers.condition_waiter, args=(cond, woken, ready, timeout))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    wait_until(lambda: ready.value == n)
    with cond:  # every waiter has released the lock, so all are inside wait()
        pass
    return procs, woken, ready


def join_all(procs: list[Any]) -> None:
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
        assert p.exitcode == 0


def test_notify_wakes_exactly_n(ctx: Any) -> None:
    cond = Condition()
    procs, woken, _ = start_waiters(ctx, cond, 4)
    with cond:
        cond.notify()
    wait_until(lambda: woken.value == 1)
    time.sleep(0.1)
    assert woken.value == 1
    with cond:
        cond.notify(2)
    wait_until(lambda: woken.value == 3)
    time.sleep(0.1)
    assert woken.value == 3
    with cond:
        cond.notify_all()
    join_all(procs)
    assert woken.value == 4


def test_wait_times_out_and_returns_false() -> None:
    cond = Condition()
    with cond:
        t0 = time.monotonic()
        assert cond.wait(0.1) is False
        assert time.monotonic() - t0 >= 0.09
        assert cond.wait_for(lambda: False, 0.05) is False
        assert cond.wait_for(lambda: 42) == 42


def test_wait_for_a_shared_value(ctx: Any) -> None:
    cond, value, result = Condition(Lock()), Value("i", 0), Value("i", 0)
    p = ctx.Process(target=workers.condition_wait_for, args=(cond, value, 3, result))
    p.start()
    for _ in range(3):
        wait_until(lambda: len(cond._waiting()) == 1)  # the child waits (not yet notified)
        with cond:
            value.value += 1
            cond.notify_all()
    join_all([p])
    assert result.value == 1


def test_wait_releases_a_recursive_lock_completely() -> None:
    r = RLock()
    cond = Condition(r)
    other_got_it: list[bool] = []

    def other() -> None:
        with cond:
            other_got_it.append(True)
            cond.notify()

    with r, r:
        t = threading.Thread(target=other)
        t.start()
        assert cond.wait(10)
        assert r._is_owned()
        t.join(10)
    assert other_got_it == [True] and not r.locked()


def test_misuse_raises() -> None:
    cond = Condition()
    with pytest.raises(AssertionError):
        cond.wait(0.01)
    with pytest.raises(AssertionError):
        cond.notify()
    with pytest.raises(TypeError):
        Condition(threading.Lock())  # type: ignore[arg-type]


def test_killed_waiter_does_not_swallow_a_notify() -> None:
    ctx = mp.get_context("fork")
    cond = Condition()
    victim, woken, _ = start_waiters(ctx, cond, 1)
    victim[0].kill()
    victim[0].join(10)
    live, woken2, _ = start_waiters(ctx, cond, 1)
    with cond:
        cond.notify()  # must reach the live waiter, not the dead one's slot
    join_all(live)
    assert woken2.value == 1 and woken.value == 0


def test_holder_killed_after_notify_does_not_wedge_the_waiter() -> None:
    ctx = mp.get_context("fork")
    cond = Condition(Lock())
    woke: list[bool] = []

    def waiter() -> None:
        with cond:
            woke.append(cond.wait(30))
            woke.append(cond._lock.owner_died)

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: cond._n.load() == 1)
    p = ctx.Process(target=workers.notify_then_die_holding, args=(cond,))
    p.start()
    p.join(30)
    t.join(30)
    assert not t.is_alive() and woke == [True, True]


def test_asyncio_wait_notify_and_cancel() -> None:
    async def main() -> None:
        cond = Condition()

        async def waiter() -> bool:
            async with cond:
                return await cond.wait_async(10)

        w = asyncio.ensure_future(waiter())
        while cond._n.load() == 0:
            await asyncio.sleep(0.01)
        async with cond:
            cond.notify()
        assert await asyncio.wait_for(w, 10) is True

        c = asyncio.ensure_future(waiter())
        while cond._n.load() == 0:
            await asyncio.sleep(0.01)
        c.cancel()
        with pytest.raises(asyncio.CancelledError):
            await c
        assert not cond._lock.locked() and cond._n.load() == 0  # cleaned up
        async with cond:
            assert await cond.wait_for_async(lambda: True, 1)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_cancelled_waiter_passes_its_notification_on() -> None:
    async def main() -> None:
        cond = Condition()
        woken: list[str] = []

        async def waiter(tag: str) -> None:
            async with cond:
                if await cond.wait_async(10):
                    woken.append(tag)

        first = asyncio.ensure_future(waiter("first"))
        while cond._n.load() < 1:
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(waiter("second"))
        while cond._n.load() < 2:
            await asyncio.sleep(0.01)
        async with cond:
            cond.notify()  # goes to the first waiter...
            first.cancel()  # ...which is cancelled before it can use it
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 10)
        assert woken == ["second"]

    asyncio.run(asyncio.wait_for(main(), 30))


def test_standalone_lock_protects_increments(ctx: Any) -> None:
    lock, value = Lock(), Value("i", 0, lock=False)
    procs = [
        ctx.Process(target=workers.increment_under, args=(lock, value, 2_000)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    join_all(procs)
    assert value.value == 6_000
