"""multiprocessing's surface: only the import line changes."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import pickle
from typing import Any

import pytest

import procshare
from procshare import Barrier, Condition, KindError, Lock, Queue, RLock, Semaphore, Value

import workers
from conftest import run_all


def test_every_multiprocessing_name_is_importable() -> None:
    missing = [n for n in mp.__all__ if not hasattr(procshare, n)]
    assert missing == []
    assert set(mp.__all__) <= set(procshare.__all__)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_context_makes_procshare_objects(method: str) -> None:
    ctx = procshare.get_context(method)
    assert type(ctx.Value("i", 0)) is Value and type(ctx.Lock()) is Lock
    assert type(ctx.Queue()) is Queue and ctx.Dict is procshare.Dict
    assert ctx.get_start_method() == method and ctx.backend.name == "shm"
    assert ctx.get_context("fork").backend is ctx.backend
    counter = ctx.Value("i", 0)
    run_all(ctx, workers.iadd, [(counter, 500)] * 2)
    assert counter.value == 1000


def test_handles_of_one_object_are_equal() -> None:
    lk = Lock()
    v = Value("i", 0, lock=lk)
    assert v.get_lock() == lk and hash(v.get_lock()) == hash(lk)
    assert pickle.loads(pickle.dumps(lk)) == lk and lk != Lock() and lk != RLock()
    assert len({lk, v.get_lock(), pickle.loads(pickle.dumps(lk))}) == 1
    sem = Semaphore()
    assert pickle.loads(pickle.dumps(sem)) == sem != Semaphore()


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int)]


def test_ctypes_structures_are_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match=r"structure.*atomically"):
        Value(Point)
    with pytest.raises(TypeError, match="structure"):
        procshare.Array(Point, 3)


def test_attaching_with_contradicting_arguments_raises(name: str) -> None:
    Barrier(2, name=name)
    with pytest.raises(KindError, match="parties"):
        Barrier(5, name=name)
    assert Barrier(2, name=name).parties == 2
    q = Queue(5, name=name + "-q", capacity=4096)
    with pytest.raises(KindError, match="maxsize"):
        Queue(3, name=name + "-q")
    with pytest.raises(KindError, match="capacity"):
        Queue(name=name + "-q", capacity=8192)
    assert Queue(name=name + "-q").full() is False
    c = Condition(name=name + "-c", max_waiters=8)
    with pytest.raises(KindError, match="waiters"):
        Condition(name=name + "-c", max_waiters=16)
    for obj in (q, c):
        obj.unlink()


class CountingAction:
    """A callable instance holding multiprocessing objects, as multiprocessing allows."""

    def __init__(self, ctx: Any = mp) -> None:
        self.calls = ctx.Value("i", 0)
        self.lock = ctx.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.calls.value += 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_barrier_action_travels_as_multiprocessing_passes_it(method: str) -> None:
    ctx = mp.get_context(method)
    action = CountingAction(ctx)
    barrier = Barrier(2, action=action)
    run_all(ctx, workers.barrier_wait_once, [(barrier,), (barrier,)])
    assert action.calls.value == 1


def test_a_barrier_with_a_held_action_needs_one_to_attach(name: str) -> None:
    Barrier(1, action=CountingAction(), name=name)
    with pytest.raises(procshare.ProcshareError, match="action="):
        Barrier(1, name=name)
    mine = CountingAction()
    Barrier(1, action=mine, name=name).wait(5)
    assert mine.calls.value == 1


def test_the_public_names_are_pinned() -> None:
    ours = {
        "Context", "CorruptSegmentError", "Counter", "Dict", "KindError", "List",
        "NotFoundError", "ProcshareError", "SpaceError", "UntrustedSegmentError", "VersionError",
        "BrokenBarrierError", "__version__", "BaseManager", "SyncManager", "Namespace",
        "connect", "LockLostError", "StoreUnavailableError",
    }  # fmt: skip
    assert set(procshare.__all__) == set(mp.__all__) | ours
    assert all(hasattr(procshare, name) for name in procshare.__all__)
