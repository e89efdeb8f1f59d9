"""Event: multiprocessing's semantics, wake-ups across processes, asyncio."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest

from procshare import Counter, Event

import workers
from conftest import run_all


def test_event_semantics() -> None:
    e = Event()
    assert not e.is_set() and e.wait(0) is False
    t0 = time.monotonic()
    assert e.wait(0.1) is False
    assert time.monotonic() - t0 >= 0.09
    e.set()
    assert e.is_set() and e.wait() is True and e.wait(0.1) is True
    e.set()  # idempotent
    e.clear()
    assert not e.is_set() and e.wait(0.01) is False
    assert e.wait(-1) is False  # a negative timeout does not block


def test_set_in_one_process_wakes_waiters_in_others(ctx: Any) -> None:
    e, done = Event(), Counter()
    waiters = [ctx.Process(target=workers.wait_event, args=(e, done)) for _ in range(3)]
    for p in waiters:
        p.start()
    run_all(ctx, workers.set_event_after, [(e, 0.2)])
    for p in waiters:
        p.join(30)
        assert p.exitcode == 0
    assert done.value == 3


def test_unrelated_process_sets_named_event(name: str) -> None:
    e = Event(name=name)
    code = f"import procshare; procshare.Event(name={name!r}).set()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert e.wait(5)


def test_asyncio_wait_and_cancel() -> None:
    async def main() -> None:
        e = Event()
        assert await e.wait_async(0.05) is False
        waiter = asyncio.ensure_future(e.wait_async())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        e.set()
        assert await asyncio.wait_for(waiter, 5) is True
        e.clear()
        cancelled = asyncio.ensure_future(e.wait_async())
        await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(asyncio.wait_for(main(), 30))
