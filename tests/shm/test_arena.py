"""Arenas: many small anonymous objects share a few segments and mappings, their handles
name the slot and its generation, a slot is reused only when nothing else can hold it,
and a damaged arena fails cleanly."""

from __future__ import annotations

import base64
import contextlib
import gc
import multiprocessing as mp
import os
import pickle
import random
import re
import subprocess
import sys
import textwrap
import threading
import weakref
from typing import Any

import pytest

import damage
import procshare
from procshare import KindError, NotFoundError
from procshare._shm.generations import _holds
from procshare._shm.names import Kind
from procshare._shm.segment import Segment

import workers
from conftest import run_all

SHM = "/dev/shm/procshare."


def python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def test_many_small_objects_share_few_segments_and_mappings() -> None:
    r = python("""
        import os, procshare
        def maps():
            with open("/proc/self/maps") as f:
                return sum(1 for _ in f)
        def files():
            mine = f"procshare._{os.getpid()}_"
            return [f for f in os.listdir("/dev/shm") if f.startswith(mine)]
        before = maps()
        counters = [procshare.Counter(i) for i in range(60_000)]
        shm = sum(os.stat("/dev/shm/" + f).st_blocks * 512 for f in files())
        others = [procshare.Lock() for _ in range(10_000)]
        others += [procshare.Event() for _ in range(10_000)]
        others += [procshare.Value("d", 0.5) for _ in range(5_000)]
        others += [procshare.Semaphore(2) for _ in range(5_000)]
        for c in counters[::100]:
            c += 1
        assert sum(c.value for c in counters) == sum(range(60_000)) + 600
        assert all(not o.acquire(False) or o.release() is None for o in others[:10_000])
        print(maps() - before, len(files()), shm)
    """)
    assert r.returncode == 0, r.stderr
    mappings, segments, shm = map(int, r.stdout.split())
    assert mappings < 60 and segments < 40  # 90,000 objects; a segment each would be 90,000
    assert shm / 60_000 <= 66  # a Counter's 64-byte line, the arenas' headers, a chunk


def test_an_arena_takes_memory_as_its_slots_are_handed_out_and_readers_take_none() -> None:
    r = python("""
        import os, re, subprocess, sys, procshare
        mine = f"procshare._{os.getpid()}_"
        def arenas():  # each arena: (its size, the bytes /dev/shm holds for it)
            found = (os.stat("/dev/shm/" + f) for f in os.listdir("/dev/shm") if f.startswith(mine))
            return sorted((st.st_size, st.st_blocks * 512) for st in found)
        kept = []
        while len(arenas()) < 4:  # 64 KiB, 128 KiB, 256 KiB, then 512 KiB
            kept.append(procshare.Counter())
        size, held = arenas()[-1]
        assert size > 512 * 1024 and held <= 72 * 1024, (size, held)  # its first 64 KiB
        name = kept[-1].name.split("@")[0]
        show = [sys.executable, "-m", "procshare", "inspect", name]
        shown = subprocess.run(show, capture_output=True, text=True, timeout=60)
        assert re.search(r"^ *objects +1$", shown.stdout, re.M), shown
        assert arenas()[-1] == (size, held)  # reading it took no memory for unused slots
        while len(arenas()) < 5:
            kept.append(procshare.Counter())
        assert arenas()[-2] == (size, size)  # filled: all of it
        for c in kept:
            c += 1
        assert sum(c.value for c in kept) == len(kept)
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def test_a_slot_is_reused_only_when_no_other_process_can_hold_it() -> None:
    ctx = mp.get_context("fork")
    c = procshare.Counter()
    name = c.name
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=workers.count_when_told, args=(c, ready, go, 1000, None))
    p.start()  # the child holds c: forked after it was made
    try:
        assert ready.wait(30)
        del c
        gc.collect()
        fresh = [procshare.Counter() for _ in range(50)]
        assert name.split(".")[0] not in {f.name.split(".")[0] for f in fresh}
        go.set()
        p.join(30)
        assert p.exitcode == 0
        assert Segment.attach(name).kind == Kind.COUNTER
        assert pickle.loads(pickle.dumps(workers.attach_counter(name))).value == 1000
        assert all(f.value == 0 for f in fresh)
    finally:
        if p.is_alive():
            p.kill()
            p.join(5)


def _held(arena: str) -> int:
    """How many objects the arena named holds now."""
    from procshare._shm.arena import census

    return census(Segment.attach(arena, Kind.ARENA))["objects"]


def test_objects_never_named_free_their_slots_and_the_slots_are_reused() -> None:
    probe = procshare.Counter()  # its name tells which arena the Counters below share
    arena = probe.name.split("@")[0]
    before = _held(arena)
    counters = [procshare.Counter(i) for i in range(100)]  # never asked for a name
    locks = [procshare.Lock() for _ in range(10)]
    assert _held(arena) == before + 100
    assert sum(c.value for c in counters) == sum(range(100))
    files = sorted(f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{os.getpid()}_"))
    del counters, locks
    gc.collect()
    assert _held(arena) == before
    again = [procshare.Counter() for _ in range(100)]
    assert _held(arena) == before + 100 and all(c.value == 0 for c in again)  # zeroed
    now = sorted(f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{os.getpid()}_"))
    assert now == files  # the freed slots were reused: no new arena


@pytest.mark.parametrize("kind", ["Counter", "List", "Dict"])
def test_an_object_whose_name_was_given_out_keeps_its_slot(kind: str) -> None:
    """A name handed to another process as a string keeps meaning that object: the
    creator dropping its handle does not free the slot for the next object."""
    make = getattr(procshare, kind)
    obj = make(7) if kind == "Counter" else make([7]) if kind == "List" else make(v=7)
    name = obj.name
    code = f"""
        import sys, procshare
        obj = procshare.{kind}._attach({name!r})
        print("attached", flush=True)
        sys.stdin.readline()
        print(obj.value if {kind!r} == "Counter" else obj[0] if {kind!r} == "List" else obj["v"])
    """
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as p:  # fmt: skip
        assert p.stdout is not None and p.stdin is not None
        try:
            assert p.stdout.readline() == "attached\n"
            del obj
            gc.collect()
            fresh = [make() for _ in range(50)]  # would take a freed slot first
            out, _ = p.communicate("go\n", timeout=60)
        finally:
            p.kill()
    assert out.strip() == "7" and name not in {f._seg.name for f in fresh}


def test_an_object_inherited_by_fork_keeps_its_slot_unnamed() -> None:
    ctx = mp.get_context("fork")
    c = procshare.Counter()  # not named before the fork: the child names it
    ready, go, out = ctx.Event(), ctx.Event(), ctx.SimpleQueue()
    p = ctx.Process(target=workers.count_when_told, args=(c, ready, go, 1000, out))
    p.start()
    try:
        assert ready.wait(30)
        del c
        gc.collect()
        fresh = [procshare.Counter() for _ in range(50)]
        go.set()
        name = out.get()
        p.join(30)
        assert p.exitcode == 0
        assert workers.attach_counter(name).value == 1000
        assert all(f.value == 0 for f in fresh)
    finally:
        if p.is_alive():
            p.kill()
            p.join(5)


def test_slot_handles_cross_spawn_and_are_checked() -> None:
    counter, lock = procshare.Counter(), procshare.Lock()
    value = procshare.Value("q", 0)
    run_all(mp.get_context("spawn"), workers.locked_increment, [(value, 200)] * 3)
    run_all(mp.get_context("spawn"), workers.iadd, [(counter, 500)] * 3)
    assert counter.value == 1500 and value.value == 600
    arena, slot = counter.name.split("@")
    index, generation = slot.split(".")
    with pytest.raises(KindError):
        Segment.attach(counter.name, Kind.LOCK)
    for stale in (f"{arena}@{index}.{int(generation) + 1}", f"{arena}@999999.1", f"{arena}@x.1"):
        with pytest.raises(NotFoundError):
            Segment.attach(stale)
    handle = pickle.dumps(lock)
    lock.unlink()  # the name goes; holders keep the object
    with pytest.raises(NotFoundError):
        pickle.loads(handle)
    assert lock.acquire(timeout=1) and lock.release() is None
    with pytest.raises(NotFoundError):
        lock.unlink()


_MAKE = """
import base64, os, pickle, signal, procshare
objects = [procshare.Counter(5), procshare.Lock(), procshare.Event(), procshare.Value("q", 7),
           procshare.RLock(), procshare.Semaphore(2), procshare.BoundedSemaphore(2),
           procshare.Dict(k1=1, k2=2), procshare.List([1, "two", b"3"])]
print(base64.b64encode(pickle.dumps(objects)).decode())
print(" ".join(sorted({o.name.split("@")[0] for o in objects})), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the arenas stay, as a killed program leaves them
"""

_USE = """
import base64, contextlib, pickle, sys
sys.path.insert(0, {tests!r})
import damage
with contextlib.suppress(Exception):  # a clean refusal to attach is fine
    objects = pickle.loads(base64.b64decode({handles!r}))
    uses = [damage.counter, damage.lock, damage.event, damage.value, damage.rlock,
            damage.semaphore, damage.bounded_semaphore, damage.dict_, damage.list_]
    for obj, use in zip(objects, uses):
        use(obj)
print("done", flush=True)
"""


@pytest.mark.parametrize("seed", range(12))
def test_damaged_arenas_fail_cleanly(seed: int) -> None:
    made = python(_MAKE)
    handles, names = made.stdout.splitlines()
    paths = [SHM + n for n in names.split()]
    try:
        rng = random.Random(f"arena-{seed}")
        for path in paths:
            damage.damage(path, rng, in_header=rng.random() < 0.25)
        tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        r = python(_USE.format(tests=tests, handles=handles), timeout=60)
        assert r.returncode == 0 and r.stdout.endswith("done\n"), r.stderr[-2000:]
    finally:  # the arenas, and the tables the Dict and List grew into (as rm --dead would)
        for path in paths:
            arena = os.path.basename(path)
            tables = [f for f in os.listdir("/dev/shm") if f.startswith(arena + "@")]
            for p in [path, *("/dev/shm/" + t for t in tables)]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)


def test_what_outgrows_a_slot_takes_a_segment() -> None:
    """An Array too large for a slot keeps a segment of its own; a Dict or List whose
    first contents outgrow its slot still roots there, its first table a segment (as
    if it had grown), and is whole in another process."""
    a, d = procshare.Array("q", 64), procshare.Dict({i: i for i in range(10)})
    big = procshare.List(["x" * 400])
    assert "@" not in a.name and "@" in d.name and "@" in big.name
    assert d._gen == big._gen == 2 and d._table_seg is not None and big._table_seg is not None
    b64 = base64.b64encode(pickle.dumps((a, d, big))).decode()
    code = f"""
        import base64, pickle
        a, d, big = pickle.loads(base64.b64decode({b64!r}))
        print(len(a), sorted(d.items()) == [(i, i) for i in range(10)], big[0] == "x" * 400)
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=60, check=False)  # fmt: skip
    assert r.stdout.split() == ["64", "True", "True"], r.stderr


def test_inspect_and_rm_reach_an_object_in_an_arena() -> None:
    counter = procshare.Counter(41)
    counter += 1
    pickle.dumps(counter)  # shared: it stays in its slot

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "procshare", *args], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    shown = command("inspect", counter.name)
    assert shown.returncode == 0 and "counter" in shown.stdout and "42" in shown.stdout
    assert "bytes          64" in shown.stdout
    slot, _ = counter.name.rsplit(".", 1)
    assert command("inspect", f"{slot}.99").returncode == 1  # another generation: not it
    arena = counter.name.split("@")[0]
    whole = command("inspect", arena)  # the arena: how many objects it holds now
    assert whole.returncode == 0 and "counter arena" in whole.stdout
    assert re.search(r"objects +[1-9]", whole.stdout) and re.search(r"escaped +[1-9]", whole.stdout)
    top = command("top", "--once", arena)
    assert top.returncode == 0 and "objects=" in top.stdout, top.stderr
    assert command("rm", counter.name).returncode == 0
    with pytest.raises(NotFoundError):
        Segment.attach(counter.name)
    counter += 1  # holders keep it
    assert counter.value == 43


_LIMITS = """
import mmap, resource, procshare
hold = []
if {maps}:  # use up the process's mappings, alternating protections so none merge
    try:
        for i in range(100_000):
            prot = mmap.PROT_READ if i % 2 else mmap.PROT_READ | mmap.PROT_WRITE
            hold.append(mmap.mmap(-1, 4096, prot=prot))
    except OSError:
        del hold[-4:]
else:  # or its address space
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 20), size + (64 << 20)))
made = []
try:
    while True:
        made.append(procshare.Array("b", 4 << 20, name=f"{{prefix}}-{{len(made)}}"))
except procshare.SpaceError as e:
    print(e)
for a in made:
    a.unlink()
"""


@pytest.mark.parametrize("maps", [True, False], ids=["mappings", "address-space"])
def test_running_out_of_mappings_says_which_limit(maps: bool) -> None:
    prefix = f"limit-{os.getpid()}"
    r = python(_LIMITS.format(maps=maps).replace("{prefix}", prefix), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("vm.max_map_count" in r.stdout) == maps and "cannot map" in r.stdout
    assert ("address space is full" in r.stdout) != maps
    assert not [f for f in os.listdir("/dev/shm") if prefix in f]  # nothing left behind


class _MyCounter(procshare.Counter):
    pass


class _MyList(procshare.List):
    pass


def test_arena_objects_are_left_out_of_the_cycle_collector_but_subclasses_are_not(
    name: str,
) -> None:
    """procshare's own handles cannot be in a cycle, so a million of them cost the cycle
    collector nothing; a user's subclass may hold anything, and is visited."""
    objs = [procshare.Counter(), procshare.Value("d", 1.5), procshare.Lock(), procshare.Event(),
            procshare.List([1]), procshare.Dict(a=1), procshare.Dict(name=name)]  # fmt: skip
    parts = [objs[4]._seg, objs[4].lock, objs[4]._hold, objs[6]._seg, objs[6].lock]
    assert not any(gc.is_tracked(o) for o in objs + parts)
    mine, listed = _MyCounter(3), _MyList([2])
    mine.me, listed.me = mine, listed  # cycles: collected once unreachable
    assert gc.is_tracked(mine) and gc.is_tracked(listed)
    place = listed._place  # a new List: this process holds it as its first user
    assert place is not None and place in _holds.held
    refs = weakref.ref(mine), weakref.ref(listed)
    del mine, listed
    gc.collect()
    assert refs[0]() is None and refs[1]() is None and place not in _holds.held
    with objs[2]:  # untracked objects work as before
        objs[0] += 2
    objs[4].append(3)
    objs[5]["b"] = 2
    assert objs[0].value == 2 and objs[1].value == 1.5
    assert objs[4] == [1, 3] and objs[5] == {"a": 1, "b": 2}


@pytest.mark.parametrize("kind", ["List", "Counter"])
def test_threads_asking_a_new_object_for_its_name_at_once_make_one_slot(kind: str) -> None:
    """Two threads asking a new object for its Segment at the same moment: one Slot
    frees the slot, once, after the object is gone (a second would free it while the
    object is alive, and the next object would share its memory)."""
    from procshare._shm import arena

    def ask(obj: Any, start: threading.Barrier, segs: list[Any]) -> None:
        start.wait(10)
        segs.append(obj._seg)

    make = getattr(procshare, kind)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(100):
            obj, start, segs = make(), threading.Barrier(2), []
            threads = [threading.Thread(target=ask, args=(obj, start, segs)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert len(segs) == 2 and segs[0] is segs[1]
            del threads
            pool = next(p for k, p in arena._pools.pools.items() if k[0] == obj._seg.kind)
            del segs
            gc.collect()
            taken = (obj._seg.owner, obj._seg.index)
            assert taken not in pool.free  # still alive: its slot is not free
            del obj
            gc.collect()
            assert pool.free.count(taken) == 1
    finally:
        sys.setswitchinterval(switch)


def memory_mapping(size: int) -> Any:
    """A core Mapping of size bytes of memory no segment names."""
    from procshare import _core

    fd = os.memfd_create("procshare-test")
    try:
        os.ftruncate(fd, size)
        return _core.Mapping(fd, size)
    finally:
        os.close(fd)


def test_slot_headers_are_checked_and_a_generation_wraps_to_one() -> None:
    """The core's view of an arena's slot headers refuses what lies outside the arena or
    a slot's data, the generation after 2**31 - 1 (a handle's 31 bits) is 1, and an
    arena whose free list leads back to it is collected."""
    import struct

    from procshare import _core

    mapping = memory_mapping(4096)
    free: list[Any] = []
    with pytest.raises(ValueError):
        _core.Slots(mapping, 64, 64, 64, 0, free, "a", 0o600)  # beyond the mapping
    with pytest.raises(ValueError):
        _core.Slots(mapping, 64, 12, 8, 0, free, "a", 0o600)  # not whole words
    slots = _core.Slots(mapping, 64, 64, 8, 0, free, "a", 0o600)
    assert slots.claim(3) == 1 and slots.generation(3) == 1
    assert slots.data(3) == 64 + 3 * 64 + _core.SLOT_HEADER
    assert _core.slot_name("a", 3, 2) == "a@3.2" and _core.slot_name("é", 0, 2**31 - 1) == (
        "é@0.2147483647"
    )
    with pytest.raises(ValueError):
        _core.slot_name("a", -1, 1)
    for index in (8, -1, 2**70):
        with pytest.raises((IndexError, OverflowError)):
            slots.claim(index)
    struct.pack_into("<I", mapping, slots.data(3) + 52, 7)  # the object's data, written
    assert slots.release(3, _core.fork_epoch()) and free == [(slots, 3)]
    assert not slots.release(3, _core.fork_epoch() + 1)  # made before a fork: not ours
    assert _core.take(free) == (slots, 3) and free == [] and slots.generation(3) == 2
    assert bytes(memoryview(mapping)[64 + 3 * 64 + 8 : 64 + 4 * 64]) == bytes(56)  # zeroed
    assert slots.escape(3) == 2 and not slots.private(3, _core.fork_epoch())
    assert not slots.release(3, _core.fork_epoch())  # escaped: never freed by its maker
    struct.pack_into("<I", mapping, 64 + 5 * 64, (2**31 - 1) << 1)  # its last generation
    assert slots.claim(5) == 1
    assert _core.take([]) is None
    with pytest.raises(TypeError):
        _core.take([("not slots", 1)])

    class Held(_core.Slots):
        __slots__ = ("__weakref__",)

    cycle: list[Any] = []
    held = Held(mapping, 64, 64, 8, 0, cycle, "a", 0o600)
    cycle.append((held, 0))  # its free list leads back to it, as an arena's does
    ref = weakref.ref(held)
    del held, cycle
    gc.collect()
    assert ref() is None


def test_the_core_makes_a_new_root_in_a_slot_and_lets_go_of_it() -> None:
    """A new Dict's root is written into its slot by one call (its first table, the
    generation, this process as its first user, a token) and registered as held; a
    failing first table leaves the slot free; collected while this process alone knew
    it, the slot is freed; once named, leaving clears this process's users entry and
    reports whether the name was unlinked.  Bad places and users are refused."""
    import struct

    from procshare import _core

    mapping = memory_mapping(8192)
    free: list[Any] = []
    slot = procshare.Dict._root_slot
    slots = _core.Slots(mapping, 64, slot, 8, 0, free, "a", 0o600)
    data = 64 + 2 * slot + _core.SLOT_HEADER

    def broken(mapping: Any, offset: int) -> None:
        raise OSError("no table")

    slots.claim(2)
    with pytest.raises(OSError, match="no table"):
        _core.root_in_slot(procshare.Dict, slots, 2, broken)
    assert free == [(slots, 2)] and not any(key[0] is slots for key in _holds.held)
    assert _core.take(free) == (slots, 2)

    tables: list[int] = []
    d = _core.root_in_slot(procshare.Dict, slots, 2, lambda m, offset: tables.append(offset))
    place = (slots, 2, _core.fork_epoch())
    assert type(d) is procshare.Dict and d._place == place and _holds.held[place] is None
    assert tables == [data + _core.ROOT_INLINE]
    gen, user, token = (struct.unpack_from(f, mapping, data + at)[0] for f, at in
                        (("<Q", _core.ROOT_GEN), ("<I", _core.ROOT_USERS),
                         ("<Q", _core.ROOT_TOKEN)))  # fmt: skip
    assert (gen, user) == (1, os.getpid()) and token != 0
    del d  # this process alone knew it: the slot is free
    assert free == [(slots, 2)] and place not in _holds.held

    assert _core.take(free) == (slots, 2)
    slots.escape(2)  # its name was handed out
    struct.pack_into("<I", mapping, data + _core.ROOT_USERS + 4, 77)
    assert not _core.leave_new(place, 77, 1) and free == []
    assert struct.unpack_from("<I", mapping, data + _core.ROOT_USERS + 4)[0] == 0
    struct.pack_into("<I", mapping, 0, _core.FLAG_UNLINKED)
    assert _core.leave_new(place, 77, 1)  # its tables are to be dropped
    for bad, error in (((slots, 2), TypeError), (("slots", 2, 0), TypeError)):
        with pytest.raises(error):
            _core.leave_new(bad, 77, 1)
    for user in (8, -2):
        with pytest.raises(ValueError):
            _core.leave_new(place, 77, user)
    with pytest.raises(TypeError):
        _core.root_in_slot(int, slots, 2, broken)


def test_a_forked_child_draws_tokens_of_its_own() -> None:
    """Tokens are drawn a batch at a time; a forked child does not reuse its parent's."""
    from procshare import _core

    assert _core.token_number() != _core.token_number()  # the batch is drawn
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, _core.token_number().to_bytes(8, "little"))
        os._exit(0)
    os.close(write)
    try:
        child = int.from_bytes(os.read(read, 8), "little")
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert child != _core.token_number()
