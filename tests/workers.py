"""Process targets for the tests: module-level so that spawn and forkserver can import them."""

from __future__ import annotations

import itertools
import os
import signal
import time
from typing import Any

import procshare


def iadd(obj: Any, n: int) -> None:
    for _ in range(n):
        obj += 1


def array_fetch_add(arr: Any, n: int) -> None:
    for i in range(n):
        arr.fetch_add(i % len(arr), 1)


def locked_increment(obj: Any, n: int) -> None:
    for _ in range(n):
        with obj.get_lock():
            obj.value += 1


def increment_by_name(name: str, n: int) -> None:
    c = procshare.Counter(name=name)
    for _ in range(n):
        c += 1


def pool_task(args: tuple[Any, int]) -> int:
    counter, n = args
    for _ in range(n):
        counter += 1
    return os.getpid()


def hold_lock_forever(lock: Any, ready: Any) -> None:
    lock.acquire()
    ready.set()
    time.sleep(3600)


def send_value(q: Any, obj: Any) -> None:
    q.put(obj)


def kill_self_holding(lock: Any, ready: Any) -> None:
    lock.acquire()
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def count_forever(counter: Any, tally: Any, slot: int, ready: Any) -> None:
    """Increment counter and, right after, this worker's tally slot, until killed."""
    ready.set()
    while True:
        counter += 1
        tally.fetch_add(slot, 1)


def dict_count_forever(d: Any, tally: Any, slot: int, ready: Any) -> None:
    """d.incr("hot") (in place, one atomic add) and, right after, this worker's tally
    slot, until killed."""
    ready.set()
    while True:
        d.incr("hot")
        tally.fetch_add(slot, 1)


def dict_churn_forever(d: Any, churn: Any, ready: Any) -> None:
    """d.incr("hot", True) (the general path: freeze the word, compare, then store over
    it or thaw it) and, right after, churn, until killed."""
    ready.set()
    while True:
        d.incr("hot", True)
        churn += 1


def locked_count_forever(value: Any, tally: Any, slot: int, ready: Any) -> None:
    """Like count_forever, but both updates inside the value's lock."""
    ready.set()
    lock = value.get_lock()
    while True:
        with lock:
            value.value += 1
            tally[slot] += 1


def try_acquire_each(locks: list[Any]) -> None:
    """Exit 0 only if none of the (held elsewhere) locks can be taken here."""
    for lock in locks:
        if lock.acquire(timeout=0.05):
            raise SystemExit(f"acquired {lock!r}, which another process holds")


def bump(counter: Any) -> None:
    """A barrier action: count the rounds."""
    counter += 1


def semaphore_section(sem: Any, inside: Any, peak: Any, total: Any, n: int) -> None:
    """Enter sem n times; record how many are inside at once (peak) and the entries (total)."""
    for _ in range(n):
        with sem:
            now = inside.add(1)
            while (seen := peak.load()) < now and not peak.compare_exchange(seen, now):
                pass
            total += 1
            inside -= 1


def wait_event(event: Any, done: Any) -> None:
    if event.wait(30):
        done += 1


def set_event_after(event: Any, delay: float) -> None:
    time.sleep(delay)
    event.set()


def condition_waiter(cond: Any, woken: Any, ready: Any, timeout: float) -> None:
    with cond:
        ready += 1
        if cond.wait(timeout):
            woken += 1


def condition_wait_for(cond: Any, value: Any, target: int, result: Any) -> None:
    with cond:
        ok = cond.wait_for(lambda: value.value >= target, 30)
        result.store(1 if ok else 2)


def notify_then_die_holding(cond: Any) -> None:
    cond.acquire()
    cond.notify()
    os.kill(os.getpid(), signal.SIGKILL)


def barrier_wait(barrier: Any, results: Any, slot: int) -> None:
    """Store 1 + the wait's index in results[slot], or -1 for BrokenBarrierError."""
    try:
        results[slot] = 1 + barrier.wait(30)
    except procshare.BrokenBarrierError:
        results[slot] = -1


def hold_named_lock(name: str, ready: Any, release: Any) -> None:
    lock = procshare.Lock(name=name)
    with lock:
        ready.set()
        release.wait(30)


def increment_under(lock: Any, value: Any, n: int) -> None:
    """value.value += 1 (two steps) n times, each inside lock."""
    for _ in range(n):
        with lock:
            value.value += 1


def produce(q: Any, producer: int, n: int) -> None:
    """Put (producer, seq, payload) for seq in range(n)."""
    for seq in range(n):
        q.put((producer, seq, b"p" * (seq % 200)))


def produce_bytes_forever(q: Any, ready: Any) -> None:
    """Put b'<seq>:' + padding until killed."""
    ready.set()
    seq = 0
    while True:
        q.put(f"{seq}:".encode() + b"x" * (seq % 300))
        seq += 1


def consume(q: Any, count: Any, checksum: Any, bad: Any) -> None:
    """Take messages until None; count them, sum their seqs, flag any per-producer reordering."""
    last: dict[int, int] = {}
    while (item := q.get(timeout=60)) is not None:
        producer, seq, payload = item
        if seq <= last.get(producer, -1) or payload != b"p" * (seq % 200):
            bad += 1
        last[producer] = seq
        count += 1
        checksum += seq


def consume_until_killed(q: Any, count: Any) -> None:
    while True:
        q.get(timeout=60)
        count += 1


def put_if_in_shard(q: Any, origin: int, shard: int, shards: int, message: Any) -> None:
    """Put message if this process's own shard of q is shard (pids count from origin, the
    creator's); exit 3 without putting otherwise."""
    if (os.getpid() - origin) % shards != shard:
        os._exit(3)
    q.put(message, timeout=30)


def ping(there: Any, back: Any, n: int) -> None:
    """Put 0..n-1 into there, each time waiting (no timeout) for its successor on back."""
    for i in range(n):
        there.put(i)
        if back.get() != i + 1:
            os._exit(4)


def pong(there: Any, back: Any, n: int) -> None:
    """Wait (no timeout) for each of n messages on there and answer it plus one on back."""
    for _ in range(n):
        back.put(there.get() + 1)


def joinable_worker(q: Any, total: Any) -> None:
    while (item := q.get(timeout=60)) is not None:
        total += item
        q.task_done()
    q.task_done()


def put_by_name(name: str, n: int) -> None:
    q = procshare.Queue(name=name)
    for i in range(n):
        q.put(i)


def dict_incr(d: Any, key: Any, n: int) -> None:
    for _ in range(n):
        d.incr(key)


def dict_cas_incr(d: Any, key: Any, n: int) -> None:
    """n increments of d[key] made by compare_and_set loops."""
    for _ in range(n):
        while not d.compare_and_set(key, (old := d[key]), old + 1):
            pass


def dict_incr_compared(d: Any, key: Any, n: int) -> None:
    """n increments of d[key] that freeze the int under the lock, compare it and either
    store over it or, when an in-place add changed it meanwhile, thaw it (n=True is
    not an exact int, so incr takes the general path)."""
    for _ in range(n):
        d.incr(key, True)


def dict_expect(d: Any, key: Any, value: Any) -> None:
    """Exit 0 only if this process reads value for key (by [], get and a copy)."""
    assert d[key] == value and d.get(key) == value and d.copy()[key] == value


def dict_read_rising(d: Any, key: Any, stop: Any, bad: Any) -> None:
    """Read d[key], which only grows, until stop: each read lower than the one before
    counts in bad."""
    last = 0
    while not stop.is_set():
        for _ in range(200):
            v = d[key]
            if v < last:
                bad += 1
            last = v


def dict_grow_and_clear(d: Any, n: int) -> None:
    """Force new generations under concurrent incrs: many new keys, then clear them."""
    for i in range(n):
        d[("filler", i)] = "x" * (i % 50)
    for i in range(n):
        del d[("filler", i)]


def dict_fill(d: Any, prefix: str, n: int) -> None:
    """d[(prefix, i)] = (prefix, i, i * i) for i in range(n)."""
    for i in range(n):
        d[(prefix, i)] = (prefix, i, i * i)


def dict_check_reads(d: Any, prefix: str, n: int, bad: Any, stop: Any) -> None:
    """Read (prefix, i) keys while others write: each value is absent or exactly right."""
    while not stop.is_set():
        for i in range(0, n, 7):
            v = d.get((prefix, i))
            if v is not None and v != (prefix, i, i * i):
                bad += 1
        for k, v in list(d.items())[:50]:
            if v != (k[0], k[1], k[1] * k[1]):
                bad += 1


def dict_write_forever(d: Any, ready: Any) -> None:
    ready.set()
    i = 0
    while True:
        d[("w", i % 5000)] = ("w", i % 5000, i)
        i += 1


def dict_nested_append(d: Any) -> None:
    counter = d["counter"]
    counter += 7
    d["inner"]["child"] = "was here"


def append_to_each_user(d: Any, users: int, me: int, times: int) -> None:
    """Append me, times over, to the List every user has in d (growing them)."""
    for _ in range(times):
        for user in range(users):
            d[user].append(me)


def store_anonymous_lists(d: Any) -> None:
    """Put a List in a slot and one with a table segment of its own into d, then exit."""
    d["small"] = procshare.List([1, 2])
    d["large"] = procshare.List(range(100))


def hold_grown_list_until_told(d: Any, taken: Any) -> None:
    """Create a List in d, grow it out of its slot, and exit normally once taken is set."""
    items = procshare.List()
    d["grown"] = items
    items.extend(range(100))
    d["token"] = items._token
    assert taken.wait(30)


def grow_nested(d: Any) -> None:
    """Append 300 items to d["list"] and add 300 keys to d["dict"], counting them in "a"."""
    items, profile, me = d["list"], d["dict"], os.getpid()
    for i in range(300):
        items.append(i)
        profile.incr("a")
        profile[f"{me}-{i}"] = i


def extend_user_list(d: Any, user: Any, n: int) -> None:
    """Extend d[user] by range(n): past its table's room, a new generation."""
    d[user].extend(range(n))


def touch_stored(outer: Any) -> None:
    """Change each object stored in outer (test_nested's handled and pickled ones)."""
    outer[0].append(5)
    outer[1]["b"] = 2
    outer[2].value += 1
    outer[3].value += 1
    with outer[4]:
        outer[5].append(6)


def grow_and_unlink(items: Any, n: int) -> None:
    """Grow the inherited List items to n items (out of its slot), then unlink it."""
    items.extend(range(n))
    items.unlink()


def dict_keys_from_spawn(d: Any) -> None:
    """Store under keys whose pickles or str hashes differ between processes."""
    d[frozenset({"alpha", "beta", "gamma"})] = "fs"
    d[("t", 1.0, None)] = "tuple"
    d["h\u00e9"] = "text"


def list_append(items: Any, value: Any, n: int) -> None:
    for i in range(n):
        items.append((value, i))


def global_append(value: int) -> None:
    """The article's mistake: append to a module-level list in a child process."""
    GLOBAL_LIST.append(value)


GLOBAL_LIST: list[int] = []


def dict_grow_forever(d: Any, ready: Any) -> None:
    """Insert new keys until killed, so the dict keeps growing."""
    ready.set()
    i = 0
    while True:
        d[i] = "x" * (i % 50)
        i += 1


def dict_create_named(name: str, n: int) -> None:
    procshare.Dict({i: i * i for i in range(n)}, name=name)


def grow_dict_after(d: Any, started: Any, go: Any, n: int) -> None:
    """Hold d, signal, wait for go (the parent unlinks meanwhile), then grow it."""
    started.set()
    go.wait(30)
    for i in range(n):
        d[i] = i


def dict_set(d: Any, key: Any, value: Any) -> None:
    d[key] = value


def barrier_wait_once(barrier: Any) -> None:
    barrier.wait(30)


def get_into(q: Any, results: Any) -> None:
    """Move one message from q (waiting without a limit) to results."""
    results.put(q.get())


def list_shift_forever(items: Any, ready: Any) -> None:
    """Move every element, over and over, by operations that each leave items a run of
    consecutive ints: insert at the front, pop the last, delete the first, insert at
    the end, remove the first and put it back."""
    ready.set()
    while True:
        items.insert(0, items[0] - 1)
        items.pop()
        del items[0]
        items.insert(len(items), items[-1] + 1)
        first = items[0]
        items.remove(first)
        items.insert(0, first)


def list_check_runs(items: Any, n: int, bad: Any) -> None:
    """Read n times while another process moves elements: every snapshot and index read
    comes from one whole state (a run of consecutive ints)."""
    for _ in range(n):
        snap = items.copy()
        if not snap or any(b != a + 1 for a, b in itertools.pairwise(snap)):
            bad += 1
        if not (isinstance(items[0], int) and isinstance(items[-1], int)):
            bad += 1


def list_append_forever(items: Any, ready: Any) -> None:
    """Append (tag, i) pairs until killed, signalling once the first is in."""
    i = 0
    while True:
        items.append(("v", i))
        if i == 0:
            ready.set()
        i += 1


# -- the Redis back end: processes that share no memory with the test ------------------


def redis_count(url: str, name: str, n: int) -> None:
    """Attach a Counter by name on the server url names (from nothing but the URL)."""
    import procshare

    counter = procshare.connect(url).Counter(name=name)
    for _ in range(n):
        counter += 1


def redis_locked_increments(lock: Any, value: Any, n: int) -> None:
    """Read-then-write a RawValue under a lease lock: exact only if the lock excludes."""
    for _ in range(n):
        with lock:
            value.store(value.load() + 1)


def redis_produce(q: Any, start: int, n: int) -> None:
    for i in range(start, start + n):
        q.put(i)


def redis_consume(q: Any, n: int, out: Any) -> None:
    got = [q.get(timeout=30) for _ in range(n)]
    out.extend(got)


def redis_take_and_die(q: Any, ready: Any) -> None:
    """Take a message and die before acknowledging it."""
    q.get(timeout=30)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def redis_hold_and_die(lock: Any, ready: Any) -> None:
    lock.acquire()
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def redis_wait_event(event: Any, flag: Any) -> None:
    if event.wait(timeout=30):
        flag.set()


def redis_barrier(barrier: Any, arrivals: Any) -> None:
    arrivals.append(barrier.wait(timeout=30))


def redis_churn(d: Any, stop: Any) -> None:
    """Delete and re-add the odd keys until told to stop."""
    while not stop.is_set():
        for i in range(1, 2000, 2):
            d.pop(f"k{i}", None)
        for i in range(1, 2000, 2):
            d[f"k{i}"] = i


def count_when_told(counter: Any, ready: Any, go: Any, n: int, out: Any) -> None:
    """Hold counter (inherited by fork), say so, then add n once told; send its name to
    out if given."""
    ready.set()
    assert go.wait(30)
    for _ in range(n):
        counter += 1
    if out is not None:
        out.put(counter.name)


def attach_counter(name: str) -> Any:
    """The Counter name (a segment's or a slot's), attached as a handle would be."""
    import procshare
    from procshare._shm.segment import Segment

    return procshare.Counter._from_segment(Segment.attach(name, procshare._shm.names.Kind.COUNTER))


def dict_pop(d: Any, key: Any) -> None:
    del d[key]


def dict_readd(d: Any, key: Any, value: Any) -> None:
    """Delete key, then add it again with value (a new entry in the same table)."""
    del d[key]
    d[key] = value


def dict_incr_as(d: Any, key: Any, role: str, n: int, slow: Any) -> None:
    """n increments of key: through the general path (role "general"), or through incr,
    counting in slow the calls that fell to the general path (role "fast")."""
    from procshare._data.dict import Dict

    if role == "general":
        for _ in range(n):
            d._incr(key, 1, 0)
        return
    general = Dict._incr

    def counted(self: Any, *args: Any) -> Any:
        slow.add(1)
        return general(self, *args)

    Dict._incr = counted  # type: ignore[method-assign]  # this child only
    for _ in range(n):
        d.incr(key)


def produce_until_killed(q: Any, producer: int, committed: Any) -> None:
    """Put (producer, seq, payload) for seq = 0, 1, ...; committed[producer] is the last
    seq whose put returned."""
    seq = 0
    while True:
        q.put((producer, seq, b"p" * (seq % 200)), timeout=60)
        committed[producer] = seq
        seq += 1


def forward_until_killed(q: Any, out: Any) -> None:
    """Move messages from q to out, one at a time, until killed."""
    while True:
        out.put(q.get(timeout=60), timeout=60)
