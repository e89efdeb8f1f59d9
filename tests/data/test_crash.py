"""SIGKILL at arbitrary points: nothing committed is lost, nobody deadlocks."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from procshare import Array, Counter, Dict, Value

import workers
from conftest import kill_while_running, run_all, running

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


@pytest.mark.parametrize("round_", range(3))
def test_killed_dict_incrementer_counts_once_or_not_at_all(round_: int) -> None:
    """A process killed anywhere in incr (an atomic add to the int's word) has added once
    or not at all, while another freezes and thaws the word (and is killed too, perhaps
    holding the lock): no stray add is ever counted."""
    ctx = mp.get_context("fork")
    d, tally, churn = Dict(hot=0), Array("q", 1), Counter()
    with running(workers.dict_churn_forever, d, churn):
        kill_while_running(workers.dict_count_forever, (d, tally, 0), (0.01, 0.2))
    run_all(ctx, workers.dict_incr, [(d, "hot", INCS)] * SURVIVORS)
    # Each victim may die between its increment and its tally: at most one ahead each.
    assert d["hot"] - SURVIVORS * INCS - tally[0] - churn.value in (0, 1, 2)
    assert tally[0] > 0 and churn.value > 0
