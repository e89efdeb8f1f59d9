"""Barrier: threading's semantics across processes, dead members, asyncio."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing as mp
import pickle
import threading
import time
from typing import Any

import pytest

from procshare import Array, Barrier, BrokenBarrierError, Counter

import workers


def run_waiters(ctx: Any, barrier: Any, n: int) -> list[int]:
    results = Array("i", n)
    procs = [ctx.Process(target=workers.barrier_wait, args=(barrier, results, i)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.kill()
        assert p.exitcode == 0
    return list(results[:])


def test_all_pass_with_distinct_indices_and_one_action_per_round(ctx: Any) -> None:
    rounds = Counter()
    barrier = Barrier(3, action=functools.partial(workers.bump, rounds))
    for r in range(2):
        assert sorted(run_waiters(ctx, barrier, 3)) == [1, 2, 3]
        assert rounds.value == r + 1
    assert not barrier.broken and barrier.n_waiting == 0 and barrier.parties == 3


def test_threads_many_rounds() -> None:
    barrier, seen = Barrier(4), []
    lock = threading.Lock()

    def go() -> None:
        for _ in range(50):
            i = barrier.wait(30)
            with lock:
                seen.append(i)

    ts = [threading.Thread(target=go) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted(seen) == sorted(list(range(4)) * 50)


def test_timeout_breaks_and_reset_repairs() -> None:
    barrier = Barrier(2, timeout=0.1)
    t0 = time.monotonic()
    with pytest.raises(BrokenBarrierError):
        barrier.wait()
    assert time.monotonic() - t0 >= 0.09 and barrier.broken
    with pytest.raises(BrokenBarrierError):
        barrier.wait(5)
    barrier.reset()
    assert not barrier.broken
    assert sorted(run_waiters(mp.get_context("fork"), barrier, 2)) == [1, 2]


def test_abort_and_n_waiting() -> None:
    barrier = Barrier(3)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            barrier.wait(30)
        except BrokenBarrierError as e:
            errors.append(e)

    t = threading.Thread(target=go)
    t.start()
    end = time.monotonic() + 30
    while barrier.n_waiting != 1:
        assert time.monotonic() < end
        time.sleep(0.01)
    barrier.abort()
    t.join(30)
    assert len(errors) == 1 and barrier.broken and barrier.n_waiting == 0


def test_failing_action_breaks_the_barrier() -> None:
    barrier = Barrier(1, action=_fail)
    with pytest.raises(ZeroDivisionError):
        barrier.wait(5)
    assert barrier.broken


def _fail() -> None:
    raise ZeroDivisionError


def test_member_killed_while_waiting_breaks_the_barrier() -> None:
    ctx = mp.get_context("fork")
    barrier = Barrier(3)
    results = Array("i", 2)
    victim = ctx.Process(target=workers.barrier_wait, args=(barrier, results, 0))
    victim.start()
    end = time.monotonic() + 30
    while barrier.n_waiting != 1:
        assert time.monotonic() < end
        time.sleep(0.01)
    victim.kill()  # not joined: a zombie for now, which must count as dead
    with pytest.raises(BrokenBarrierError):
        barrier.wait()  # no timeout: only the dead member can break it (else pytest-timeout)
    victim.join(10)
    barrier.reset()
    assert sorted(run_waiters(ctx, Barrier(2), 2)) == [1, 2]


def test_bad_arguments() -> None:
    for bad, exc in [(0, ValueError), (-1, ValueError), ("2", TypeError), (True, TypeError)]:
        with pytest.raises(exc):
            Barrier(bad)
    with pytest.raises(ValueError):
        Barrier(2, timeout=-1)
    with pytest.raises(TypeError):
        Barrier(2, action=5)  # type: ignore[arg-type]


def test_a_large_action_is_stored_whole() -> None:
    barrier = Barrier(1, action=functools.partial(len, "x" * 10_000))
    twin = pickle.loads(pickle.dumps(barrier))
    assert twin._action.args == ("x" * 10_000,)
    assert twin.wait(5) == 0


def test_asyncio_wait() -> None:
    async def main() -> None:
        barrier = Barrier(3)
        results = await asyncio.gather(*(barrier.wait_async(10) for _ in range(3)))
        assert sorted(results) == [0, 1, 2]

    asyncio.run(asyncio.wait_for(main(), 30))
