"""Managers: multiprocessing's interface, procshare's objects, registered types in a real server."""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from multiprocessing import managers as mp_managers
from typing import Any

import pytest

import procshare
from procshare import NotFoundError
from procshare.managers import BaseManager, RemoteError, ServerGoneError, SyncManager

from conftest import run_all


def _append(items: Any, i: int) -> None:
    items.append(i)


def _add(total: Any, n: int, lock: Any) -> None:
    for _ in range(n):
        if lock is None:
            total.value += 1
        else:
            with lock:
                total.value += 1


def test_the_articles_list_prints_all_ten_items(ctx: Any) -> None:
    with procshare.Manager() as manager:
        items = manager.list()
        run_all(ctx, _append, [(items, i) for i in range(10)])
        assert sorted(items) == list(range(10))


@pytest.mark.parametrize("with_lock", [False, True])
def test_the_articles_counter_is_exact_with_and_without_a_lock(ctx: Any, with_lock: bool) -> None:
    with procshare.Manager() as manager:
        total = manager.Value("tmp", 0)
        lock = manager.Lock() if with_lock else None
        run_all(ctx, _add, [(total, 50, lock)] * 20)
        assert total.value == 1_000


def test_builtin_types_are_procshares_shared_objects() -> None:
    with procshare.Manager() as manager:
        assert isinstance(manager.dict(a=1), procshare.Dict)
        assert isinstance(manager.list([1]), procshare.List)
        assert isinstance(manager.Value("i", 3), procshare.Value)
        assert isinstance(manager.Array("d", [1.0, 2.0]), procshare.Array)
        assert isinstance(manager.Queue(), procshare.Queue)
        assert isinstance(manager.JoinableQueue(), procshare.JoinableQueue)
        for typeid in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event"):
            assert isinstance(getattr(manager, typeid)(), getattr(procshare, typeid))
        assert isinstance(manager.Barrier(2), procshare.Barrier)
        assert isinstance(manager.Namespace(), procshare.Namespace)


def test_objects_belong_to_the_manager() -> None:
    with procshare.Manager() as manager:
        d = manager.dict(a=1)
        blob = pickle.dumps(d)
        assert pickle.loads(blob)["a"] == 1
    d["b"] = 2  # this process still holds it
    assert d == {"a": 1, "b": 2}
    with pytest.raises(NotFoundError):
        pickle.loads(blob)  # but the manager released its name


def _namespace_worker(ns: Any, d: Any, q: Any) -> None:
    ns.seen = ns.x + 1
    d["inner"].append("from child")
    q.get(timeout=10).put("reply")


def test_proxy_semantics_namespace_nesting_and_queues_of_queues(ctx: Any) -> None:
    with procshare.Manager() as manager:
        ns = manager.Namespace()
        ns.x = 1
        ns._local = "not shared"
        d = manager.dict()
        d["inner"] = manager.list()
        q, inner = manager.Queue(), manager.Queue()
        q.put(inner)
        run_all(ctx, _namespace_worker, [(ns, d, q)])
        assert repr(ns) == "Namespace(x=1, seen=2)"
        assert d["inner"] == ["from child"] and inner.get(timeout=10) == "reply"
        with pytest.raises(AttributeError):
            ns.missing  # noqa: B018
        v = manager.Value("i", 5)
        v.set(v.get() + 1)
        assert v._getvalue() == 6 and v._callmethod("get") == 6
        assert d._getvalue() == {"inner": ["from child"]} and d._callmethod("__len__") == 1
        assert ns._getvalue().x == 1


def test_a_namespaces_attributes_are_all_the_users() -> None:
    ns = procshare.Namespace(x=1)  # as everywhere, name= would name the segment
    ns.name = "Bob"  # an attribute: not the segment's name
    ns.unlink = 3
    del ns.x
    assert (ns.name, ns.unlink) == ("Bob", 3) and repr(ns) == "Namespace(name='Bob', unlink=3)"
    assert pickle.loads(pickle.dumps(ns)).name == "Bob"


def test_the_manager_states_are_multiprocessings() -> None:
    manager = procshare.Manager()
    with pytest.raises(mp.ProcessError):
        manager.start()
    manager.shutdown()
    manager.shutdown()  # a second shutdown does nothing
    manager.join(10)
    with pytest.raises(TypeError, match="does not pickle"):
        pickle.dumps(manager)


class Plain:
    def __init__(self) -> None:
        self.x = 1


class PlainManager(BaseManager):
    pass


PlainManager.register("Plain", Plain, mp_managers.NamespaceProxy)


def test_multiprocessings_proxy_classes_register_as_procshares() -> None:
    with PlainManager() as manager:
        plain = manager.Plain()
        assert plain.x == 1
        plain.x = 5
        assert plain.x == 5 and plain._getvalue().x == 5
    with pytest.raises(TypeError, match="BaseProxy"):
        PlainManager.register("Bad", Plain, Plain)


def _square(x: int) -> int:
    return x * x


def test_pool_runs_in_the_server() -> None:
    """Its workers were forked by the server but are not the server: SIGTERM has its default
    action there (their death is how a Pool is terminated, and how the server's exit reaps
    them).  The pool is closed and joined, so its workers end by their sentinels."""
    with procshare.Manager() as manager:
        pool = manager.Pool(2)
        assert pool.map(_square, range(5)) == [0, 1, 4, 9, 16]
        assert pool.apply_async(_square, (7,)).get(timeout=30) == 49
        assert list(pool.imap(_square, [2, 3])) == [4, 9]
        found = pool.apply_async(signal.getsignal, (signal.SIGTERM,)).get(timeout=30)
        assert found == signal.SIG_DFL
        pool.close()
        pool.join()


# -- registered types -------------------------------------------------------------------------


class Calc:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def add(self, a: int, b: int) -> int:
        return a + b

    def bump(self) -> int:
        self.n += 1
        return self.n

    def child(self) -> Calc:
        return Calc(100)

    def fail(self) -> None:
        raise ValueError("raised in the server")

    def fail_unpicklable(self) -> None:
        raise _Unpicklable()

    def hidden(self) -> str:
        return "hidden"

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("no")


class CalcManager(BaseManager):
    pass


CalcManager.register("Calc", Calc, method_to_typeid={"child": "Calc"})
CalcManager.register("Narrow", Calc, exposed=("add", "child"), method_to_typeid={"child": "Calc"})


def test_registered_types_live_in_the_server() -> None:
    with CalcManager() as manager:
        c = manager.Calc(5)
        assert c.add(2, 3) == 5 and c._callmethod("add", (4, 4)) == 8
        assert [c.bump(), c.bump()] == [6, 7]
        assert c._getvalue().n == 7  # a copy
        child = c.child()
        assert child.bump() == 101
        narrow = manager.Narrow()
        with pytest.raises(AttributeError, match="exposed"):
            narrow._callmethod("hidden")
        assert narrow.child().hidden() == "hidden"  # a Calc: every public method
        assert manager._number_of_objects() == 3  # the temporary child proxy was released


def test_server_exceptions_carry_the_servers_traceback() -> None:
    with CalcManager() as manager:
        c = manager.Calc()
        with pytest.raises(ValueError, match="raised in the server") as info:
            c.fail()
        assert "in fail" in str(info.value.__cause__)
        with pytest.raises(RemoteError, match="_Unpicklable"):
            c.fail_unpicklable()
        assert c.add(1, 1) == 2  # the server lives on


def _use_later(q: Any, out: Any) -> None:
    time.sleep(0.3)  # the sender has dropped its proxy by now
    calc = q.get(timeout=10)
    out.put((calc.bump(), calc.child().add(1, 2)))


def _use_after_fork(calc: Any, out: Any) -> None:
    time.sleep(0.3)
    out.put(calc.bump())


def test_a_pickled_proxy_keeps_its_object_until_it_arrives(ctx: Any) -> None:
    with CalcManager(ctx=ctx) as manager:
        calc = manager.Calc(10)
        q, out = procshare.Queue(), procshare.Queue()
        proc = ctx.Process(target=_use_later, args=(q, out))
        proc.start()
        q.put(calc)
        del calc
        gc.collect()
        assert out.get(timeout=30) == (11, 3)
        proc.join(30)
        assert proc.exitcode == 0
        assert manager._number_of_objects() == 0  # released once every holder let go


def test_a_proxy_used_after_fork_keeps_its_object() -> None:
    ctx = mp.get_context("fork")
    with CalcManager(ctx=ctx) as manager:
        calc = manager.Calc(20)
        out = procshare.Queue()
        proc = ctx.Process(target=_use_after_fork, args=(calc, out))
        proc.start()
        del calc
        gc.collect()
        assert out.get(timeout=30) == 21
        proc.join(30)
        assert proc.exitcode == 0
        assert manager._number_of_objects() == 0


def test_proxies_returned_by_calls_are_released() -> None:
    with CalcManager() as manager:
        calc = manager.Calc()
        for _ in range(200):
            assert calc.child().add(1, 1) == 2
        gc.collect()
        assert manager._number_of_objects() == 1


def test_a_killed_server_fails_pending_and_later_calls_promptly() -> None:
    manager = CalcManager()
    manager.start()
    calc = manager.Calc()
    threading.Timer(0.3, os.kill, (manager._process.pid, signal.SIGKILL)).start()
    t0 = time.monotonic()
    with pytest.raises(ServerGoneError):
        calc.wait(60)
    assert time.monotonic() - t0 < 10
    with pytest.raises(ServerGoneError):
        calc.add(1, 1)
    manager.join(10)
    manager.shutdown()


# -- across machines: TCP, authkey, proxies of the built-in types ------------------------------


def _serve(address_out: Any) -> None:
    manager = SyncManager(address=("127.0.0.1", 0), authkey=b"tcp-secret")
    server = manager.get_server()
    address_out.put(server.address)
    server.serve_forever()


@pytest.fixture
def tcp_server() -> Any:
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    proc = ctx.Process(target=_serve, args=(out,))
    proc.start()
    address = out.get()
    yield address
    client = SyncManager(address=address, authkey=b"tcp-secret")
    client.connect()
    client._request(("shutdown",))
    proc.join(30)
    assert proc.exitcode == 0


def test_tcp_clients_authenticate_and_get_proxies(tcp_server: Any) -> None:
    with pytest.raises(mp.AuthenticationError):
        SyncManager(address=tcp_server, authkey=b"wrong").connect()
    remote = SyncManager(address=tcp_server, authkey=b"tcp-secret", local=False)
    remote.connect()
    d = remote.dict()
    d["a"] = 1
    d.update(b=2)
    assert (d["a"], len(d), sorted(d), sorted(d.keys())) == (1, 2, ["a", "b"], ["a", "b"])
    assert str(d) == "{'a': 1, 'b': 2}"
    v = remote.Value("i", 5)
    v.value += 3
    assert v.value == 8
    ns = remote.Namespace()
    ns.x = 3
    assert ns.x == 3 and repr(ns) == "Namespace(x=3)"
    items = remote.list([1])
    items.append(2)
    assert list(items) == [1, 2]
    lock = remote.Lock()
    with lock:
        pass
    q = remote.Queue()
    q.put("message")
    assert q.get(timeout=10) == "message"
    local = SyncManager(address=tcp_server, authkey=b"tcp-secret")
    local.connect()
    assert isinstance(local.dict(), procshare.Dict)  # same machine: shared memory


def test_a_wrong_key_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    server = CalcManager(address=("127.0.0.1", 0), authkey=b"right").get_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="procshare.managers"):
            with pytest.raises(mp.AuthenticationError):
                CalcManager(address=server.address, authkey=b"wrong").connect()
            deadline = time.monotonic() + 10
            while "refused" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
        assert "refused a client" in caplog.text
        client = CalcManager(address=server.address, authkey=b"right", local=False)
        client.connect()
        assert client.Calc().add(2, 2) == 4
    finally:
        server.stop_event.set()
        thread.join(10)
