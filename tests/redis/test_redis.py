"""The Redis back end against a real redis-server: URLs and secrets, names, many client
processes counting exactly, lease locks (killed holders, lost leases, fencing), the
at-least-once queue, wake-ups, and a server killed and restarted."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import procshare
from procshare import KindError, LockLostError, NotFoundError, StoreUnavailableError

import workers
from conftest import REDIS_PASSWORD, free_port, redis_process, run_all


@pytest.fixture
def redis(redis_server: str) -> Any:
    return procshare.connect(redis_server)


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_the_password_stays_out_of_reprs_handles_and_errors(redis: Any, redis_server: str) -> None:
    counter = redis.Counter()
    for text in (repr(redis), repr(counter), str(redis.backend.name)):
        assert REDIS_PASSWORD not in text and "127.0.0.1" in text
    assert REDIS_PASSWORD.encode() not in pickle.dumps(counter)
    carried = procshare.connect(redis_server, pickle_password=True).Counter()
    assert REDIS_PASSWORD.encode() in pickle.dumps(carried)
    wrong = redis_server.replace(REDIS_PASSWORD, "not-the-password")
    with pytest.raises(PermissionError) as refused:
        procshare.connect(wrong)
    assert "not-the-password" not in str(refused.value)


def test_bad_urls_and_unreachable_servers_fail_clearly() -> None:
    for bad in ("http://localhost", "redis://localhost:99999", "redis://h/notadb", 42):
        with pytest.raises((ValueError, TypeError)):
            procshare.connect(bad)  # type: ignore[arg-type]
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        procshare.connect(f"redis://:secret@127.0.0.1:{port}/0?timeout=2")
    assert time.monotonic() - t0 < 10


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A redis-server that speaks only TLS, with a certificate from a CA made for the test
    and a password; yields (its rediss:// URL without the CA, the CA file)."""
    trustme = pytest.importorskip("trustme")
    workdir = tmp_path_factory.mktemp("redis-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    port, files = free_port(), {k: str(workdir / f"{k}.pem") for k in ("ca", "cert", "key")}
    with redis_process(port, "--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no",
                       "--tls-cert-file", files["cert"], "--tls-key-file", files["key"],
                       "--tls-ca-cert-file", files["ca"], "--requirepass", REDIS_PASSWORD,
                       "--save", "", "--dir", str(workdir)):  # fmt: skip
        yield f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0", str(workdir / "ca.pem")


def test_tls_verifies_the_server_and_handles_carry_the_options(
    tls_server: tuple[str, str], name: str
) -> None:
    url, ca = tls_server
    trusted = f"{url}?ssl_ca_certs={ca}&timeout=5"
    redis = procshare.connect(trusted, pickle_password=True)
    counter = redis.Counter(name=name)
    handle = pickle.dumps(counter)
    assert ca.encode() in handle and b"rediss://" in handle
    ctx = mp.get_context("spawn")  # fresh interpreters: the handle alone reaches the server
    run_all(ctx, workers.iadd, [(counter, 50)] * 2)
    run_all(ctx, workers.redis_count, [(trusted, name, 25)])
    assert counter.value == 125
    assert REDIS_PASSWORD not in repr(procshare.connect(trusted))
    t0 = time.monotonic()  # a server whose certificate no trusted CA signed is refused
    with pytest.raises(StoreUnavailableError, match="certificate verify failed") as refused:
        procshare.connect(f"{url}?timeout=5").Counter()
    assert REDIS_PASSWORD not in str(refused.value) and time.monotonic() - t0 < 10
    unchecked = procshare.connect(f"{url}?ssl_cert_reqs=none&timeout=5").Counter(name=name)
    assert unchecked.value == 125  # verification off (the user's choice): it connects
    with pytest.raises(StoreUnavailableError):  # plain text to a TLS port: refused, no hang
        procshare.connect(url.replace("rediss://", "redis://") + "?timeout=2").Counter()
    counter.unlink()


def test_url_options_are_checked() -> None:
    for bad in ("redis://h/0?ssl_ca_certs=/ca.pem", "rediss://h/0?ssl_cert_reqs=maybe",
                "redis://h/0?tiemout=5", "unix:///r.sock?ssl_certfile=/c.pem"):  # fmt: skip
        with pytest.raises(ValueError, match="bad Redis URL"):
            procshare.connect(bad)


def test_names_attach_across_processes_and_kinds_are_checked(redis_server: str, name: str) -> None:
    redis = procshare.connect(redis_server)
    counter = redis.Counter(5, name=name)
    ctx = mp.get_context("spawn")  # a fresh interpreter: nothing but the URL and the name
    run_all(ctx, workers.redis_count, [(redis_server, name, 100)] * 3)
    assert counter.value == 305
    with pytest.raises(KindError):
        redis.Dict(name=name)
    counter.unlink()
    handle = pickle.dumps(counter)
    with pytest.raises(NotFoundError):
        pickle.loads(handle)
    with pytest.raises(ValueError):
        redis.Counter(name="bad/name")


def test_many_processes_count_lock_and_queue_exactly(redis: Any) -> None:
    counter, value = redis.Counter(), redis.Value("q", 0)
    run_all(redis, workers.iadd, [(counter, 200), (value, 200)] * 3)
    assert counter.value == 600 and value.value == 600
    lock, plain = redis.Lock(), redis.RawValue("q", 0)
    run_all(redis, workers.redis_locked_increments, [(lock, plain, 50)] * 4)
    assert plain.value == 200  # a read and a write each time: exact only under the lock
    q, out = redis.Queue(), redis.List()
    procs = [redis.Process(target=workers.redis_produce, args=(q, i * 300, 300))
             for i in range(3)]  # fmt: skip
    procs += [redis.Process(target=workers.redis_consume, args=(q, 450, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(out) == list(range(900))  # every message once


def test_dict_list_and_values_keep_their_types(redis: Any) -> None:
    d = redis.Dict({(1, "a"): [1, 2], 2.5: "x", "n": 7, b"k": None})
    assert d[(1, "a")] == [1, 2] and d[2.5] == "x" and d[b"k"] is None and len(d) == 4
    assert d.incr("n", 3) == 10 and d.incr("new") == 1 and d.incr("f", 0.5, 1.0) == 1.5
    assert d.compare_and_set("n", 10, "ten") and not d.compare_and_set("n", 10, 11)
    assert d.compare_and_set((1, "a"), [1, 2], [3]) and d[(1, "a")] == [3]
    assert d.setdefault("s", {1}) == {1} and d.setdefault("s", 2) == {1}
    assert d.pop(2.5) == "x" and d.pop(2.5, None) is None and 2.5 not in d
    assert sorted(map(str, d)) == sorted(map(str, [(1, "a"), "n", b"k", "new", "f", "s"]))
    with pytest.raises(TypeError):
        d[[1]] = 1
    items = redis.List(["a", 1, None])
    items.insert(1, "b")
    items.insert(-1, 2.0)
    assert items == ["a", "b", 1, 2.0, None] and items.pop(1) == "b" and items[-1] is None
    del items[0]
    items.remove(2.0)
    assert items == [1, None] and items.index(None) == 1
    items[0] = "z"
    items[5:] = [4, 3]
    items.sort(key=str)
    assert items == [3, 4, None, "z"]
    v = redis.Value("b", 120)
    v.value += 10  # one step, and wraps as a signed byte does
    assert v.value == -126 and v.fetch_add(1) == -126
    with pytest.raises(OverflowError):
        v.value = 1000
    f = redis.Value("d", 0.5)
    f.value += 0.25
    assert f.value == 0.75 and f.compare_exchange(0.75, 2.0) and f.value == 2.0
    arr = redis.Array("i", [1, 2, 3])
    assert arr.fetch_add(1, 5) == 2 and arr[:] == [1, 7, 3] and len(arr) == 3
    ns = redis.Namespace(x=1)
    ns.x += 1
    assert ns.x == 2 and pickle.loads(pickle.dumps(ns)).x == 2


def test_a_killed_holder_frees_the_lock_within_its_lease(redis: Any) -> None:
    lock, ready = redis.Lock(lease=1.0), redis.Event()
    p = redis.Process(target=workers.redis_hold_and_die, args=(lock, ready))
    p.start()
    p.join(30)
    assert ready.is_set() and not lock.acquire(timeout=0.1)
    t0 = time.monotonic()
    assert lock.acquire(timeout=10)
    assert time.monotonic() - t0 < 3 and lock.owner_died and lock.fence == 2
    lock.release()
    assert lock.acquire(timeout=1) and not lock.owner_died and lock.fence == 3
    lock.release()


def test_a_held_lease_is_renewed_and_a_lost_one_is_reported(
    redis: Any, redis_server: str, name: str
) -> None:
    lock = redis.Lock(lease=0.6, name=name)
    with lock:
        time.sleep(1.5)  # past two leases: renewed in the background
        assert not lock.lost and lock.locked()
    import redis as redis_py

    assert lock.acquire()
    redis_py.Redis.from_url(redis_server).delete(lock.part("owner"))  # the lease lapsed...
    other = pickle.loads(pickle.dumps(lock))  # ... and another holder took the lock:
    assert other.acquire(timeout=1) and other.fence > lock.fence  # fencing tells them apart
    deadline = time.monotonic() + 5
    while not lock.lost:  # ... the renewer notices within a third of a lease
        assert time.monotonic() < deadline, "the lost lease was not noticed"
        time.sleep(0.05)
    with pytest.raises(LockLostError):
        lock.check()
    with pytest.raises(LockLostError):
        lock.release()
    with pytest.raises(ValueError):
        lock.release()  # not held any more
    other.release()


def test_a_killed_consumer_s_message_is_delivered_again(redis: Any) -> None:
    q, ready = redis.Queue(lease=0.5), redis.Event()
    q.put("only once?")
    p = redis.Process(target=workers.redis_take_and_die, args=(q, ready))
    p.start()
    p.join(30)
    assert ready.is_set() and q.empty()
    assert q.get(timeout=10) == "only once?"  # after the dead consumer's lease lapsed
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)


def test_queue_bounds_batches_and_joinable(redis: Any) -> None:
    q = redis.Queue(3)
    q.put_many([1, 2])
    with pytest.raises(queue.Full):
        q.put_many([3, 4], timeout=0.05)  # all or nothing
    q.put(3)
    assert q.full() and q.get_many(10) == [1, 2, 3]
    jq = redis.JoinableQueue()
    jq.put_many(["a", "b"])
    assert jq.get() == "a" and not jq.join(timeout=0.05)
    jq.task_done()
    assert jq.get() == "b"
    jq.task_done()
    assert jq.join(timeout=5)
    with pytest.raises(ValueError):
        jq.task_done()
    # shared memory's shards= is accepted and checked alike: a Redis list is one order
    sq = redis.SimpleQueue(shards=4)
    sq.put_many(range(5))
    assert sq.get_many(10) == list(range(5))
    with pytest.raises(ValueError, match="maxsize"):
        redis.Queue(3, shards=2)
    with pytest.raises(ValueError, match="shards"):
        redis.Queue(shards=0)


def test_waits_wake_promptly_across_processes(redis: Any) -> None:
    event, flag = redis.Event(), redis.Event()
    p = redis.Process(target=workers.redis_wait_event, args=(event, flag))
    p.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    event.set()
    assert flag.wait(10) and time.monotonic() - t0 < 2
    p.join(10)
    barrier, arrivals = redis.Barrier(3), redis.List()
    run_all(redis, workers.redis_barrier, [(barrier, arrivals)] * 3)
    assert sorted(arrivals) == [0, 1, 2]
    sem = redis.BoundedSemaphore(1)
    assert sem.acquire(timeout=1) and not sem.acquire(timeout=0.05)
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    cond = redis.Condition()
    woken: list[bool] = []

    def waiter() -> None:
        with cond:
            woken.append(cond.wait(timeout=10))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    with cond:
        cond.notify()
    t.join(10)
    assert woken == [True]


@pytest.fixture
def restartable(tmp_path: Any) -> Iterator[tuple[str, Any, Any]]:
    """A redis-server with appendfsync always that the test may SIGKILL and start again:
    (url, start, kill)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server")
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return proc
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill() -> None:
        procs[-1].kill()
        procs[-1].wait(10)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0?timeout=2", start, kill
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def test_a_killed_server_fails_calls_clearly_and_loses_nothing_acknowledged(
    restartable: tuple[str, Any, Any],
) -> None:
    url, start, kill = restartable
    redis = procshare.connect(url)
    counter, q = redis.Counter(), redis.Queue()
    for _ in range(100):
        counter.add(1)
    q.put_many(range(10))
    kill()
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        counter.add(1)
    with pytest.raises(StoreUnavailableError):
        q.get(timeout=1)
    assert time.monotonic() - t0 < 10  # an error at the call, never a hang
    start()
    assert counter.value == 100  # every acknowledged increment survived (appendfsync always)
    assert q.get_many(100, timeout=5) == list(range(10))  # and reconnected on the next call


def test_a_process_with_its_own_dev_shm_shares_through_redis(redis_server: str, name: str) -> None:
    """Separate process trees and a separate /dev/shm: only the server is shared."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("mount namespaces are not permitted here")
    counter = procshare.connect(redis_server).Counter(name=name)
    code = (f"import procshare; c = procshare.Counter(name={name!r}); c += 41; "
            "import os; print(sorted(os.listdir('/dev/shm')))")  # fmt: skip
    run = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs tmpfs /dev/shm && exec {sys.executable} -c \"{code}\""],
        env={"PROCSHARE_URL": redis_server, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"  # it made no segment: its objects live on the server
    assert counter.value == 41
    counter.unlink()


def test_iteration_never_raises_while_another_process_writes(redis: Any) -> None:
    d, stop = redis.Dict({f"k{i}": i for i in range(2000)}), redis.Event()
    p = redis.Process(target=workers.redis_churn, args=(d, stop))
    p.start()
    try:
        for _ in range(5):
            seen = list(d)  # HSCAN: keys may come and go meanwhile, nothing raises
            assert {f"k{i}" for i in range(0, 2000, 2)} <= set(seen)  # never touched
            assert len(d.items()) >= 1000
    finally:
        stop.set()
        p.join(30)
    assert p.exitcode == 0


def test_bench_redis_section_runs_beside_redis_py(redis_server: str) -> None:
    run = subprocess.run([sys.executable, "-m", "procshare", "bench", "--only", "redis", "--quick"],
                         env={**os.environ, "PROCSHARE_URL": redis_server},
                         capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = [ln for ln in run.stdout.splitlines() if " | " in ln and ln.rstrip().endswith("x")]
    assert len(rows) == 8 and "vs baseline: speed relative to redis-py" in run.stdout
    assert any("at most once" in row for row in rows)  # the guarantee's price is shown
    assert REDIS_PASSWORD not in run.stdout + run.stderr
