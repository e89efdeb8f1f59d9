"""The contract every back end keeps, whatever stores the objects: atomic steps, exact
counts across processes, lock ownership, queue order, dict and list behaviour, bad input.

Each test takes a context (procshare.get_context(...), or a later back end's) and uses
only its constructors and processes, so a new back end joins by adding a fixture param.
The back end's constructor table itself is checked here too.
"""

from __future__ import annotations

import queue
from typing import Any

import pytest

import procshare
from procshare._backends import OBJECTS, Backend

import workers
from conftest import run_all


@pytest.fixture(params=["shm-fork", "shm-spawn", "redis-fork", "redis-spawn"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A context: shared memory, and a real Redis server, under each start method.  Under
    spawn the Redis password reaches the children through PROCSHARE_URL, as it would in
    a deployment (handles carry no password)."""
    store, method = request.param.split("-")
    if store == "shm":
        return procshare.get_context(method)
    url = request.getfixturevalue("redis_server")
    if method == "spawn":
        monkeypatch.setenv("PROCSHARE_URL", url)
    return procshare.connect(url, start_method=method)


def test_a_back_end_provides_every_constructor(backend: Any) -> None:
    assert set(OBJECTS) <= set(dir(backend))
    assert all(callable(getattr(backend, name)) for name in OBJECTS)
    with pytest.raises(TypeError, match="must provide exactly"):
        Backend("partial", {"Lock": backend.Lock})


def test_counts_are_exact_across_processes(backend: Any) -> None:
    value, counter = backend.Value("q", 0), backend.Counter()
    run_all(backend, workers.iadd, [(value, 300), (counter, 300)] * 2)
    assert value.value == 600 and counter.value == 600


def test_read_modify_write_helpers_are_single_steps(backend: Any) -> None:
    v = backend.Value("i", 5)
    assert v.fetch_add(2) == 5 and v.add(1) == 8 and v.exchange(1) == 8
    assert v.compare_exchange(1, 9) and not v.compare_exchange(1, 10) and v.value == 9
    d = backend.Dict()
    assert d.incr("k") == 1 and d.incr("k", 5) == 6
    assert d.setdefault("s", 1) == 1 and d.setdefault("s", 2) == 1
    assert d.compare_and_set("k", 6, 7) and not d.compare_and_set("k", 6, 8) and d["k"] == 7


def test_lock_ownership(backend: Any) -> None:
    lock, rlock = backend.Lock(), backend.RLock()
    assert lock.acquire() and not lock.acquire(False)
    run_all(backend, workers.try_acquire_each, [([lock],)])  # held here: not there
    lock.release()
    with pytest.raises(ValueError):
        lock.release()
    assert rlock.acquire() and rlock.acquire()  # re-entrant for its owner
    run_all(backend, workers.try_acquire_each, [([rlock],)])
    rlock.release()
    rlock.release()
    with pytest.raises(AssertionError):
        rlock.release()


def test_queue_order_and_bounds(backend: Any) -> None:
    q = backend.Queue(3)
    for i in range(3):
        q.put(i)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    assert [q.get(timeout=5) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    run_all(backend, workers.send_value, [(q, ("from", "child"))])
    assert q.get(timeout=5) == ("from", "child")


def test_dict_and_list_behave_as_the_builtins(backend: Any) -> None:
    d, items = backend.Dict(a=1), backend.List([3, 1, 2])
    d["b"] = [1, 2]
    del d["a"]
    assert d == {"b": [1, 2]} and str(d) == "{'b': [1, 2]}" and list(d) == ["b"]
    items.append(0)
    items.sort()
    assert items == [0, 1, 2, 3] and items[-1] == 3 and items[1:3] == [1, 2]
    run_all(backend, workers.list_append, [(items, "c", 2)])
    assert len(items) == 6 and str(items).startswith("[0, 1, 2, 3")


def test_bad_input_raises_and_changes_nothing(backend: Any) -> None:
    d, q, v = backend.Dict(a=1), backend.Queue(), backend.Value("b", 1)
    with pytest.raises(TypeError):
        d[[1]] = 2  # unhashable key
    with pytest.raises(Exception, match="pickle"):
        d["f"] = lambda: None  # unpicklable value
    with pytest.raises(Exception, match="pickle"):
        q.put(lambda: None)
    with pytest.raises(OverflowError):
        v.value = 1000
    with pytest.raises(ValueError):
        backend.Value("z", 0)
    assert d == {"a": 1} and q.empty() and v.value == 1
