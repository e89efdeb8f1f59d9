"""SIGKILL at arbitrary points: nothing committed is lost, nobody deadlocks."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from procshare import Array, Counter, Value

import workers
from conftest import kill_while_running, run_all

SURVIVORS, INCS = 3, 20_000


@pytest.mark.parametrize("round_", range(3))
def test_killed_incrementer_loses_nothing_committed(round_: int) -> None:
    ctx = mp.get_context("fork")
    counter, tally = Counter(), Array("q", 1)
    kill_while_running(workers.count_forever, (counter, tally, 0), (0.01, 0.2))
    run_all(ctx, workers.iadd, [(counter, INCS)] * SURVIVORS)
    # The victim may die between its two increments: at most one ahead in the counter.
    assert counter.value - SURVIVORS * INCS - tally[0] in (0, 1)


@pytest.mark.parametrize("round_", range(3))
def test_killed_lock_holder_does_not_wedge_the_others(round_: int) -> None:
    ctx = mp.get_context("fork")
    value, tally = Value("q", 0), Array("q", 1)
    # The victim holds the lock nearly all the time: the kill very likely lands inside it.
    kill_while_running(workers.locked_count_forever, (value, tally, 0), (0.01, 0.2))
    run_all(ctx, workers.locked_increment, [(value, 2_000)] * SURVIVORS, timeout=60)
    assert value.value - SURVIVORS * 2_000 - tally[0] in (0, 1)
