"""Lock and RLock (the part that Value and Array stand on): semantics and a dead holder."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import pickle
import threading
import time

import pytest

from procshare import Lock, RLock

import workers
from conftest import running


def test_lock_semantics() -> None:
    lock = Lock()
    assert lock.acquire() and lock.locked()
    assert not lock.acquire(False)
    t0 = time.monotonic()
    assert not lock.acquire(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    lock.release()
    with pytest.raises(ValueError):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    lock.acquire()
    assert lock.acquire(False, 1.0) is False  # as multiprocessing: the timeout is ignored
    lock.release()
    with pytest.raises(ValueError):
        lock.acquire(timeout=-2)
    with pytest.raises(TypeError):
        lock.acquire(timeout="1")


def test_lock_may_be_released_by_another_thread() -> None:
    lock = Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(5)
    assert lock.acquire(timeout=1)


def test_rlock_recursion_and_ownership() -> None:
    r = RLock()
    with r, r:
        assert r._is_owned()
        errors: list[BaseException] = []

        def other() -> None:
            try:
                r.release()
            except AssertionError as e:
                errors.append(e)
            if r.acquire(timeout=0.05):
                errors.append(RuntimeError("acquired an RLock owned by another thread"))

        t = threading.Thread(target=other)
        t.start()
        t.join(5)
        assert len(errors) == 1 and isinstance(errors[0], AssertionError)
    assert not r.locked()
    with pytest.raises(AssertionError):
        r.release()


def test_killed_holder_releases_the_lock() -> None:
    lock = Lock()
    with running(workers.hold_lock_forever, lock) as holder:
        assert not lock.acquire(timeout=0.05)
        holder.kill()
        holder.join(10)
        assert lock.acquire(timeout=10)  # never, were the dead holder not taken over
        assert lock.owner_died
        lock.release()
        assert lock.acquire(timeout=1) and not lock.owner_died


def test_holder_that_dies_unreaped_is_detected() -> None:
    # The dead holder stays a zombie (not joined) while we wait: liveness reads its state.
    r = RLock()
    with running(workers.kill_self_holding, r):
        assert r.acquire(timeout=5)
        assert r.owner_died and r._is_owned()
        r.release()


def test_forked_child_does_not_inherit_ownership() -> None:
    # The child has the same thread ident as the parent's thread: only a fresh pid
    # (refreshed at fork) tells them apart.
    r, lock = RLock(), Lock()
    r.acquire()
    lock.acquire()
    ctx = mp.get_context("fork")
    p = ctx.Process(target=workers.try_acquire_each, args=([r, lock],))
    p.start()
    p.join(30)
    r.release()
    lock.release()
    assert p.exitcode == 0


def test_named_lock_shared_with_a_child_by_name(name: str) -> None:
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=workers.hold_named_lock, args=(name, ready, release))
    p.start()
    try:
        assert ready.wait(60)
        lock = Lock(name=name)
        assert not lock.acquire(timeout=0.05)
        release.set()
        assert lock.acquire(timeout=10) and not lock.owner_died
        lock.release()
    finally:
        p.join(30)
        if p.is_alive():
            p.kill()


def test_pickled_lock_is_the_same_lock() -> None:
    for lock in (Lock(), RLock()):
        twin = pickle.loads(pickle.dumps(lock))
        with lock:
            assert twin.locked()
        assert not twin.locked()


def test_asyncio_lock() -> None:
    async def main() -> None:
        lock = Lock()
        async with lock:
            assert lock.locked()
            assert not await lock.acquire_async(timeout=0.05)
            waiter = asyncio.ensure_future(lock.acquire_async())
            await asyncio.sleep(0.05)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            later = asyncio.ensure_future(lock.acquire_async(timeout=10))
        assert await later  # released by `async with`, taken by the waiting task
        lock.release()
        r = RLock()
        async with r, r:  # recursive on the event loop's thread
            assert r._is_owned()
        assert not r.locked()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_asyncio_waiter_takes_over_from_a_killed_holder() -> None:
    ctx = mp.get_context("fork")
    lock, ready = Lock(), ctx.Event()
    p = ctx.Process(target=workers.hold_lock_forever, args=(lock, ready))
    p.start()
    try:
        assert ready.wait(30)

        async def main() -> bool:
            waiter = asyncio.ensure_future(lock.acquire_async(timeout=10))
            await asyncio.sleep(0.05)
            p.kill()
            return await waiter

        assert asyncio.run(main()) and lock.owner_died
        lock.release()
    finally:
        p.join(10)
