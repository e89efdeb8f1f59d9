"""Semaphore and BoundedSemaphore: multiprocessing's semantics, limits across processes, asyncio."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from procshare import BoundedSemaphore, Counter, Lock, Semaphore

import workers
from conftest import run_all


def test_semaphore_semantics() -> None:
    sem = Semaphore(2)
    assert sem.acquire() and sem.get_value() == 1
    assert sem.acquire() and sem.get_value() == 0
    assert not sem.acquire(False) and sem.get_value() == 0
    t0 = time.monotonic()
    assert not sem.acquire(timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    sem.release()
    assert sem.get_value() == 1
    sem.release(3)
    assert sem.get_value() == 4
    with sem:
        assert sem.get_value() == 3
    assert Semaphore().get_value() == 1 and Semaphore(0).get_value() == 0


def test_bounded_semaphore_refuses_over_release() -> None:
    sem = BoundedSemaphore(2)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError, match="too many"):
        sem.release()
    assert sem.get_value() == 2
    sem.acquire()
    with pytest.raises(ValueError):
        sem.release(2)
    assert sem.get_value() == 1


@pytest.mark.parametrize(
    ("args", "exc"),
    [((-1,), ValueError), ((2**31,), ValueError), (("1",), TypeError), ((1.0,), TypeError)],
)
def test_bad_values(args: tuple[Any, ...], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Semaphore(*args)


def test_bad_release() -> None:
    sem = Semaphore(0)
    with pytest.raises(ValueError):
        sem.release(0)
    with pytest.raises(OverflowError):
        sem.release(2**31)
    assert sem.get_value() == 0


def test_attach_by_name_and_kind_checks(name: str) -> None:
    sem = Semaphore(3, name=name)
    other = Semaphore(name=name)  # attaches: the value is not reset
    other.acquire()
    assert sem.get_value() == 2
    with pytest.raises(TypeError):
        BoundedSemaphore(name=name)
    with pytest.raises(TypeError):
        Lock(name=name)


def test_limits_concurrency_across_processes(ctx: Any) -> None:
    sem = Semaphore(2)
    inside, peak, total = Counter(), Counter(), Counter()
    run_all(ctx, workers.semaphore_section, [(sem, inside, peak, total, 300)] * 4)
    assert total.value == 1200 and inside.value == 0
    assert 1 <= peak.value <= 2
    assert sem.get_value() == 2


def test_asyncio_acquire_waits_without_blocking_and_cancels() -> None:
    async def main() -> None:
        sem = Semaphore(1)
        async with sem:
            assert sem.get_value() == 0
            assert not await sem.acquire_async(timeout=0.05)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            t = asyncio.ensure_future(ticker())
            waiter = asyncio.ensure_future(sem.acquire_async())
            await asyncio.sleep(0.2)
            assert ticks >= 5 and not waiter.done()  # the loop kept running
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            t.cancel()
        assert sem.get_value() == 1  # the cancelled wait took nothing

    asyncio.run(asyncio.wait_for(main(), 30))
