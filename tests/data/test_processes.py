"""Across processes: exact counts under fork, spawn and forkserver, Pools, queues, fork."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import pytest

import procshare
from procshare import Array, Counter, RawValue, Value

import workers
from conftest import run_all

PROCS, INCS = 4, 5_000


@pytest.mark.parametrize(
    "make", [Counter, lambda: Value("i", 0), lambda: RawValue("Q", 0), lambda: Value("d", 0.0)],
    ids=["Counter", "Value-i", "RawValue-Q", "Value-d"],
)  # fmt: skip
def test_concurrent_increments_are_exact(ctx: Any, make: Any) -> None:
    obj = make()
    run_all(ctx, workers.iadd, [(obj, INCS)] * PROCS)
    assert obj.value == PROCS * INCS


def test_array_element_increments_are_exact(ctx: Any) -> None:
    arr = Array("q", 7)
    run_all(ctx, workers.array_fetch_add, [(arr, 7 * 700)] * PROCS)
    assert arr[:] == [PROCS * 700] * 7


def test_lock_protected_increments_are_exact(ctx: Any) -> None:
    v = Value("i", 0)
    run_all(ctx, workers.locked_increment, [(v, 2_000)] * PROCS)
    assert v.value == PROCS * 2_000


def test_attach_by_name_in_children(ctx: Any, name: str) -> None:
    c = Counter(name=name)
    run_all(ctx, workers.increment_by_name, [(name, INCS)] * 3)
    assert c.value == 3 * INCS


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_tasks_share_the_counter(method: str) -> None:
    c = Counter()
    with mp.get_context(method).Pool(2) as pool:
        pids = pool.map(workers.pool_task, [(c, 1_000)] * 8, chunksize=1)
    assert c.value == 8_000 and os.getpid() not in pids


def test_objects_pass_through_a_queue(ctx: Any) -> None:
    q = ctx.Queue()
    v = Value("q", 0)
    p = ctx.Process(target=workers.send_value, args=(q, v))
    p.start()
    received = q.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    received += 5
    assert v.value == 5 and received.name == v.name


def test_child_of_plain_fork_keeps_working() -> None:
    c, arr = Counter(), Array("i", 2)
    pid = os.fork()
    if pid == 0:  # child: no multiprocessing involved
        code = 1
        try:
            c += 10
            arr[1] = 7
            with arr.get_lock():
                arr[0] = arr[1] + 1
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c.value == 10 and arr[:] == [8, 7]


def test_drop_in_process_names() -> None:
    assert procshare.Process is mp.Process and procshare.Pool is mp.Pool
    assert procshare.cpu_count() == mp.cpu_count()
    assert procshare.current_process().name == mp.current_process().name
