"""Queue, SimpleQueue, JoinableQueue: queue.Queue's contract, many producers and consumers,
crashes, asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import struct
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procshare import Array, Counter, JoinableQueue, KindError, Lock, Queue, SimpleQueue, _core

import workers
from conftest import rng, run_all

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.one_of(st.binary(max_size=50), st.integers(), st.text())),
        st.tuples(st.just("get"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(maxsize=st.integers(0, 5), sequence=ops)
def test_matches_queue_queue(maxsize: int, sequence: list[tuple[str, Any]]) -> None:
    q, model = Queue(maxsize), queue.Queue(maxsize)
    for op, arg in sequence:
        if op == "put":
            try:
                model.put_nowait(arg)
            except queue.Full:
                with pytest.raises(queue.Full):
                    q.put_nowait(arg)
            else:
                q.put_nowait(arg)
        else:
            try:
                expected = model.get_nowait()
            except queue.Empty:
                with pytest.raises(queue.Empty):
                    q.get_nowait()
            else:
                assert q.get_nowait() == expected
        assert q.qsize() == model.qsize() and q.empty() == model.empty()
        assert q.full() == model.full()


def test_bytes_and_objects_round_trip_in_order() -> None:
    q = Queue()
    items = [b"raw", bytearray(b"ba"), {"a": [1, 2]}, None, 3.5, b"", "text", (1, b"x")]
    for item in items:
        q.put(item)
    assert [q.get(timeout=1) for _ in items] == items
    q.put_many(items)
    assert q.get_many(100) == items
    assert type(items[1]) is bytearray
    many = [items[i % len(items)] for i in range(1000)]  # more than one batch of tags
    q.put_many(many)
    assert q.get_many(3) == many[:3] and q.get_many(100) == many[3:103]
    assert q.get_many(2000) == many[103:] and q.empty()


def test_timeouts() -> None:
    q = Queue(maxsize=1)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    q.put(1)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.1)
    assert time.monotonic() - t0 >= 0.09
    with pytest.raises(queue.Full):
        q.put(2, False, 10)  # non-blocking: the timeout is ignored
    with pytest.raises(queue.Empty):
        Queue().get_many(5, timeout=0.05)
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_oversized_and_unpicklable_messages_change_nothing() -> None:
    q = Queue(capacity=256)
    q.put(b"keep")
    with pytest.raises(ValueError, match="does not fit"):
        q.put(b"x" * 300)
    with pytest.raises(Exception, match="pickle"):
        q.put(lambda: None)
    with pytest.raises(Exception, match="pickle"):
        q.put_many([1, threading.Lock()])
    assert q.qsize() == 1 and q.get() == b"keep"
    # a message that fits the ring passes even when the ring's free space wraps around
    for size in (10, 150, 200, 30, 210):
        q.put(b"y" * size)
        assert q.get(timeout=1) == b"y" * size


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Queue(capacity=10)
    with pytest.raises(TypeError):
        Queue("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Queue().get_many(0)
    q = Queue()
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put(1)
    q.join_thread()
    q.cancel_join_thread()


def test_many_producers_and_consumers_deliver_exactly_once(ctx: Any) -> None:
    q, n = Queue(maxsize=50, capacity=8192), 3_000
    count, checksum, bad = Counter(), Counter(), Counter()
    consumers = [ctx.Process(target=workers.consume, args=(q, count, checksum, bad))
                 for _ in range(2)]  # fmt: skip
    for c in consumers:
        c.start()
    run_all(ctx, workers.produce, [(q, p, n) for p in range(3)], timeout=120)
    for _ in consumers:
        q.put(None)
    for c in consumers:
        c.join(60)
        assert c.exitcode == 0
    assert count.value == 3 * n and checksum.value == 3 * n * (n - 1) // 2
    assert bad.value == 0 and q.empty()


def test_shards_keep_each_producers_order(ctx: Any) -> None:
    """Producers put into shards of their own; one consumer sees every message once, and
    each producer's in the order put, whatever the interleaving."""
    q, n = Queue(shards=4, capacity=4096), 2_000
    producers = [ctx.Process(target=workers.produce, args=(q, p, n)) for p in range(6)]
    for p in producers:
        p.start()
    seen: dict[int, list[int]] = {p: [] for p in range(6)}
    deadline = time.monotonic() + 120
    while sum(map(len, seen.values())) < 6 * n and time.monotonic() < deadline:
        for producer, seq, payload in q.get_many(500, timeout=30):
            assert payload == b"p" * (seq % 200)
            seen[producer].append(seq)
    for p in producers:
        p.join(30)
        assert p.exitcode == 0
    assert all(seqs == list(range(n)) for seqs in seen.values())
    assert q.qsize() == 0 and q.empty()


def test_no_wake_up_is_lost_between_two_blocked_getters(ctx: Any) -> None:
    """Two processes pass a message back and forth 20,000 times, each waiting without a
    timeout: a lost wake-up would leave both asleep for good (the join's timeout catches
    it).  Getters park on the put count after a last look at every shard."""
    there, back = Queue(), Queue()
    procs = [
        ctx.Process(target=f, args=(there, back, 20_000)) for f in (workers.ping, workers.pong)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    stuck = [p.pid for p in procs if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)
    assert not stuck and all(p.exitcode == 0 for p in procs)
    assert there.qsize() == 0 and back.qsize() == 0


def test_a_busy_shard_keeps_no_other_waiting_long() -> None:
    """A consumer takes a run of messages from the shard it found one in, then looks at
    the next: a message in another shard comes out long before a busy shard empties."""
    q, ctx = Queue(shards=2), mp.get_context("fork")
    for i in range(200):
        q.put(("a", i))  # this process's own shard: 0
    for _ in range(50):  # a producer whose own shard is the other one
        p = ctx.Process(target=workers.put_if_in_shard, args=(q, os.getpid(), 1, 2, ("b", 0)))
        p.start()
        p.join(30)
        if p.exitcode == 0:
            break
        assert p.exitcode == 3
    got = [q.get(timeout=10) for _ in range(201)]
    assert got.index(("b", 0)) < 40
    assert [m for m in got if m[0] == "a"] == [("a", i) for i in range(200)]


def test_shards_argument(name: str) -> None:
    q = Queue(shards=3)
    for i in range(10):
        q.put(i)
    assert q.qsize() == 10 and q._stats()[-1] == 3 and "shards=3" in repr(q)
    assert [q.get() for _ in range(10)] == list(range(10))  # one process: one shard
    assert Queue(5)._stats()[-1] == 1  # maxsize counts every message in one place
    for bad in (0, _core.RING_MAX_SHARDS + 1):
        with pytest.raises(ValueError, match="shards"):
            Queue(shards=bad)
    with pytest.raises(ValueError, match="maxsize"):
        Queue(3, shards=2)
    with pytest.raises(TypeError):
        Queue(shards="2")  # type: ignore[arg-type]
    named = Queue(name=name, shards=2)
    assert Queue(name=name)._stats()[-1] == 2  # attaching takes the queue's own
    with pytest.raises(KindError, match="shards"):
        Queue(name=name, shards=4)
    named.unlink()


def test_killed_producer_leaves_whole_messages() -> None:
    ctx = mp.get_context("fork")
    for _ in range(3):
        q, ready = Queue(capacity=4096), ctx.Event()
        victim = ctx.Process(target=workers.produce_bytes_forever, args=(q, ready))
        victim.start()
        assert ready.wait(30)
        received = []
        deadline = time.monotonic() + rng.uniform(0.05, 0.2)
        while time.monotonic() < deadline:
            received.extend(q.get_many(100, timeout=5))
        victim.kill()
        victim.join(10)
        received.extend(q.get_many(10_000, timeout=0.1) if not q.empty() else [])
        for seq, msg in enumerate(received):  # in order, none torn, none twice
            assert msg == f"{seq}:".encode() + b"x" * (seq % 300)
        q.put(b"after")  # the ring still works for everyone else
        assert q.get(timeout=1) == b"after"


def _drain(q: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out += q.get_many(1_000, timeout=0.3)
        except queue.Empty:
            return out


@pytest.mark.parametrize("round_", range(3))
def test_producers_and_a_consumer_killed_across_shards(round_: int) -> None:
    """Three producers and a consumer SIGKILLed at random moments while the test consumes
    too: every message is whole and taken at most once, each producer's in order, none
    lost but the one each killed process may have been moving, and the queue works on."""
    ctx = mp.get_context("fork")
    q, out = Queue(shards=4, capacity=4096), Queue(shards=1, capacity=1 << 22)
    committed = Array("q", [-1] * 3)
    procs = [ctx.Process(target=workers.produce_until_killed, args=(q, p, committed))
             for p in range(3)]  # fmt: skip
    procs.append(ctx.Process(target=workers.forward_until_killed, args=(q, out)))
    for proc in procs:
        proc.start()
    start = time.monotonic()
    kills = sorted((start + rng.uniform(0.05, 0.5), i) for i in range(len(procs)))
    got: list[Any] = []
    try:
        for at, i in kills:
            while time.monotonic() < at:
                with contextlib.suppress(queue.Empty):
                    got += q.get_many(100, timeout=0.02)
            procs[i].kill()
    finally:
        for proc in procs:
            proc.kill()
            proc.join(10)
    got += _drain(q)
    forwarded = _drain(out)
    taken = got + forwarded
    assert len(set(taken)) == len(taken)  # none twice
    for _, seq, payload in taken:
        assert payload == b"p" * (seq % 200)  # none torn
    missing = 0
    for p in range(3):
        mine = [seq for producer, seq, _ in got if producer == p]
        assert mine == sorted(mine)  # in order
        seqs = {seq for producer, seq, _ in taken if producer == p}
        assert max(seqs, default=-1) <= committed[p] + 1  # at most the put in flight more
        missing += len(set(range(committed[p] + 1)) - seqs)
    assert missing <= 1  # the message the killed consumer held
    q.put(b"after")
    assert q.get(timeout=5) == b"after"


def test_killed_consumer_does_not_block_the_others() -> None:
    ctx = mp.get_context("fork")
    q, taken = Queue(capacity=4096), Counter()
    victim = ctx.Process(target=workers.consume_until_killed, args=(q, taken))
    victim.start()
    for i in range(2_000):
        q.put(i)
    victim.kill()
    victim.join(10)
    rest = []
    while not q.empty():
        rest.extend(q.get_many(1_000, timeout=1))
    # the victim counted what it fully took; at most one message died with it
    assert 2_000 - 1 <= taken.value + len(rest) <= 2_000
    assert rest == sorted(rest)


def _hold_the_ring_locks_and_die(q: Any) -> None:
    shards = q._stats()[-1]
    for i in range(shards):  # a shard's producers' lock, then its consumers' a line on
        for line in (0, 64):
            offset = q._seg.data_offset + _core.RING_HEADER + i * _core.RING_SHARD + line
            _core.Mutex(q._seg.mapping, offset, False).acquire()
    os._exit(0)


@pytest.mark.parametrize("maxsize", [0, 10])  # two locks a shard, or one for both sides
@pytest.mark.parametrize("side", ["blocking", "asyncio"])
def test_a_dead_holder_of_the_ring_lock_is_replaced(side: str, maxsize: int) -> None:
    """A process that died inside put or get (holding a shard's lock; here every lock
    of every shard) delays the others by about one probe interval, blocking and awaited
    alike."""
    q = Queue(maxsize, shards=1 if maxsize else 4)
    q.put("before")
    holder = mp.get_context("fork").Process(target=_hold_the_ring_locks_and_die, args=(q,))
    holder.start()
    holder.join(10)
    assert holder.exitcode == 0  # the lock word still names the dead pid
    if side == "blocking":
        q.put("after", timeout=10)
        got = [q.get(timeout=10), q.get(timeout=10)]
    else:

        async def main() -> list[Any]:
            await q.put_async("after", timeout=10)
            return [await q.get_async(10), await q.get_async(10)]

        got = asyncio.run(asyncio.wait_for(main(), 30))
    assert got == ["before", "after"]


def _restart_and_die(q: Any) -> None:
    """What a producer killed inside the restart of an empty shard at offset 0 leaves:
    both locks held, head moved to the next lap's start, tail not yet."""
    shard = q._seg.data_offset + _core.RING_HEADER
    for line in (0, 64):
        _core.Mutex(q._seg.mapping, shard + line, False).acquire()
    view = memoryview(q._seg.mapping)
    (tail,) = struct.unpack_from("<Q", view, shard + 24)
    struct.pack_into("<Q", view, shard + 88, tail + 256 - tail % 256)  # head
    os._exit(0)


def test_a_restart_cut_short_is_repaired() -> None:
    q = Queue(shards=1, capacity=256)
    q.put(b"x" * 100)
    assert q.get() == b"x" * 100  # empty, mid-ring: a large message must restart at 0
    holder = mp.get_context("fork").Process(target=_restart_and_die, args=(q,))
    holder.start()
    holder.join(10)
    assert holder.exitcode == 0
    with pytest.raises(queue.Empty):
        q.get(timeout=0.5)  # head > tail: getters see an empty shard
    q.put(b"y" * 200, timeout=10)  # the next producer moves tail up to head
    assert q.get(timeout=10) == b"y" * 200 and q.qsize() == 0


def test_named_queue_from_a_child(ctx: Any, name: str) -> None:
    q = Queue(name=name)
    run_all(ctx, workers.put_by_name, [(name, 100)])
    assert [q.get(timeout=5) for _ in range(100)] == list(range(100))
    with pytest.raises(TypeError):
        JoinableQueue(name=name)
    with pytest.raises(TypeError):
        Lock(name=name)


def test_joinable_queue(ctx: Any) -> None:
    q, total = JoinableQueue(), Counter()
    consumer = ctx.Process(target=workers.joinable_worker, args=(q, total))
    consumer.start()
    q.put_many(range(100))
    assert q.join(30)
    assert total.value == sum(range(100))
    q.put(None)
    assert q.join(30)
    consumer.join(30)
    assert consumer.exitcode == 0
    with pytest.raises(ValueError):
        q.task_done()
    assert JoinableQueue().join(0) is not False


def test_simple_queue() -> None:
    q = SimpleQueue()
    assert q.empty()
    q.put([1])
    assert not q.empty() and q.get() == [1]
    q.close()


def test_asyncio_put_get_and_cancel() -> None:
    async def main() -> None:
        q = Queue(maxsize=1)
        getter = asyncio.ensure_future(q.get_async(10))
        await asyncio.sleep(0.05)
        await q.put_async("hello")
        assert await getter == "hello"
        await q.put_async(1)
        with pytest.raises(queue.Full):
            await q.put_async(2, timeout=0.05)
        blocked = asyncio.ensure_future(q.put_async(3))
        await asyncio.sleep(0.05)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert q.qsize() == 1 and await q.get_async(1) == 1
        with pytest.raises(queue.Empty):
            await q.get_async(0.05)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_queue_passes_through_a_queue() -> None:
    outer, inner = Queue(), Queue()
    outer.put(inner)  # pickled as a handle, like any procshare object
    got = outer.get(timeout=5)
    got.put(b"through")
    assert inner.get(timeout=5) == b"through"
