"""SIGKILL at arbitrary points: nothing committed is lost, nobody deadlocks."""

from __future__ import annotations

import multiprocessing as mp
import random
import time

import pytest

from procshare import Array, Counter, Value

import workers
from conftest import run_all

SURVIVORS, INCS = 3, 20_000


@pytest.mark.parametrize("round_", range(3))
def test_killed_incrementer_loses_nothing_committed(round_: int) -> None:
    ctx = mp.get_context("fork")
    counter, tally, ready = Counter(), Array("q", 1), ctx.Event()
    victim = ctx.Process(target=workers.count_forever, args=(counter, tally, 0, ready))
    victim.start()
    try:
        assert ready.wait(30)
        time.sleep(random.uniform(0.01, 0.2))
        victim.kill()
        victim.join(10)
        run_all(ctx, workers.iadd, [(counter, INCS)] * SURVIVORS)
        # The victim may die between its two increments: at most one ahead in the counter.
        assert counter.value - SURVIVORS * INCS - tally[0] in (0, 1)
    finally:
        if victim.is_alive():
            victim.kill()


@pytest.mark.parametrize("round_", range(3))
def test_killed_lock_holder_does_not_wedge_the_others(round_: int) -> None:
    ctx = mp.get_context("fork")
    value, tally, ready = Value("q", 0), Array("q", 1), ctx.Event()
    victim = ctx.Process(target=workers.locked_count_forever, args=(value, tally, 0, ready))
    victim.start()
    try:
        assert ready.wait(30)
        time.sleep(random.uniform(0.01, 0.2))
        victim.kill()  # very likely inside the lock: it holds it nearly all the time
        victim.join(10)
        run_all(ctx, workers.locked_increment, [(value, 2_000)] * SURVIVORS, timeout=60)
        assert value.value - SURVIVORS * 2_000 - tally[0] in (0, 1)
    finally:
        if victim.is_alive():
            victim.kill()
