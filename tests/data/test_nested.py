"""Dicts and Lists nested in a Dict by the ten thousand: each anonymous one takes a slot
of an arena (its root and first table), so they cost few mappings and little memory,
grow into table segments from any process, and their tables go with them."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import procshare
from procshare import CorruptSegmentError, Dict, List
from procshare._shm import inventory

import workers
from conftest import run_all


def python(code: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def tables_of(token: str) -> list[str]:
    return [f for f in os.listdir("/dev/shm") if f"~{token}." in f]


def test_tens_of_thousands_of_nested_lists_and_dicts_take_few_mappings() -> None:
    """40,000 Lists and 10,000 Dicts in one Dict: a segment and a table each would take
    100,000 mappings, past the kernel's 65,530."""
    r = python("""
        import os, procshare
        def maps():
            with open("/proc/self/maps") as f:
                return sum(1 for _ in f)
        def shm():  # the arenas: the outer Dict's tables are not the nested objects' cost
            mine = f"procshare._{os.getpid()}_"
            return sum(os.path.getsize("/dev/shm/" + f) for f in os.listdir("/dev/shm")
                       if f.startswith(mine) and "~" not in f)
        before, used = maps(), shm()
        d = procshare.Dict()
        for user in range(40_000):
            d[user] = procshare.List([user])
        for user in range(10_000):
            d["profile", user] = procshare.Dict(id=user)
        for user in range(0, 40_000, 4):
            d[user].append(-user)
        assert sum(sum(d[user]) for user in range(40_000)) == (
            sum(range(40_000)) - sum(range(0, 40_000, 4)))
        assert all(d["profile", user]["id"] == user for user in range(0, 10_000, 7))
        print(maps() - before, shm() - used)
    """)
    assert r.returncode == 0, r.stderr
    mappings, size = map(int, r.stdout.split())
    assert mappings < 100, mappings
    assert size / 50_000 <= 1024, size  # a 512-byte slot each, in arenas that double


def test_a_list_per_user_appended_by_processes_is_exact(ctx: Any) -> None:
    users, procs, times = 60, 3, 6  # 18 items each: every List grows out of its slot
    d = Dict()
    for user in range(users):
        d[user] = List()
    run_all(ctx, workers.append_to_each_user, [(d, users, me, times) for me in range(procs)])
    for user in range(users):
        assert sorted(d[user]) == sorted(list(range(procs)) * times), user


def test_a_grown_list_outlives_its_creator_while_held_and_its_tables_go_after() -> None:
    ctx = mp.get_context("fork")
    d, taken = Dict(), ctx.Event()
    p = ctx.Process(target=workers.hold_grown_list_until_told, args=(d, taken))
    p.start()
    try:
        for _ in range(3000):
            if "token" in d:
                break
            p.join(0.01)
        items, token = d["grown"], d["token"]
        taken.set()
        p.join(30)
        assert p.exitcode == 0
        # The creator exited: its arena's name is gone, this holder keeps the List.
        assert items == list(range(100))
        items.extend(range(100, 1000))  # grows again, from this process
        assert items[999] == 999 and tables_of(token)
        del items
        gc.collect()
        assert tables_of(token) == []  # the last holder let go
    finally:
        if p.is_alive():
            p.kill()
            p.join(5)


def test_rm_dead_removes_a_killed_creators_nested_objects_and_their_tables() -> None:
    r = python("""
        import os, signal, procshare
        d = procshare.Dict()
        d["small"] = procshare.List([1])
        d["grown"] = procshare.List()
        d["grown"].extend(range(1000))
        print(os.getpid(), d["grown"]._token, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert r.returncode == -signal.SIGKILL
    pid, token = r.stdout.split()
    mine = f"_{pid}_"
    assert tables_of(token)
    for e in inventory.leftovers():
        if e.name.startswith(mine):
            inventory.remove(e.name)
    assert tables_of(token) == []
    assert not [f for f in os.listdir("/dev/shm") if mine in f]


def test_a_nested_dict_grows_and_keeps_its_entries() -> None:
    outer = Dict()
    outer["inner"] = Dict(a=1)
    inner = outer["inner"]
    for i in range(500):
        inner[i] = "x" * (i % 40)
    assert procshare.Dict is type(outer["inner"])
    assert outer["inner"]["a"] == 1 and len(outer["inner"]) == 501
    assert outer["inner"][499] == "x" * (499 % 40)


def test_growth_out_of_the_slot_replaces_a_table_a_killed_writer_left_half_built() -> None:
    """A writer killed while creating the first table segment leaves a segment with no
    header under its name: the next writer to grow replaces it, and it goes with the
    List."""
    items = List([0])
    token = items._token
    unfinished = f"/dev/shm/procshare.{items._seg.name}~{token}.2"
    fd = os.open(unfinished, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.close(fd)
    items.extend(range(1, 100))
    assert items == list(range(100)) and items._gen == 2
    del items
    gc.collect()
    assert tables_of(token) == []


@pytest.mark.parametrize("kind", ["List", "Dict"])
def test_a_damaged_first_table_in_a_slot_cannot_reach_the_next_object(kind: str) -> None:
    """The first table's header says how large it is: one that claims more than its slot
    (though not more than the arena) is refused, so it never reaches its neighbour's slot."""
    make = getattr(procshare, kind)
    damaged, neighbour = make(), make()
    seg, name = damaged._seg, damaged._seg.handle()
    assert neighbour._seg.arena is seg.arena  # side by side in one arena
    header = seg.data_offset + 128  # the first table's header, after the root's words
    view = memoryview(seg.mapping)
    try:  # its first word: a List's capacity, a Dict's slots, 8 each
        assert int.from_bytes(view[header : header + 8], "little") == 8
        view[header : header + 8] = (64).to_bytes(8, "little")
    finally:
        view.release()
    del damaged
    gc.collect()
    with pytest.raises(CorruptSegmentError, match="larger than its place"):
        make._attach(name)
    assert len(neighbour) == 0


def test_a_list_a_child_made_goes_with_it_and_the_error_says_why(ctx: Any) -> None:
    """An anonymous object lives as long as the process that made it: reaching one whose
    creator exited raises NotFoundError naming that process and the remedy (name=)."""
    d = Dict()
    run_all(ctx, workers.store_anonymous_lists, [(d,)])
    for key in ("small", "large"):
        with pytest.raises(procshare.NotFoundError, match=r"\(pid \d+\) has exited.*name="):
            d[key]


def test_a_small_profile_or_list_stays_in_its_slot() -> None:
    """A Dict of six small fields and a List of eight small elements, filled after they
    were made, take no table segment: nested by the million, they stay one slot each."""
    users = Dict()
    users["ada"] = Dict()
    users["ada-log"] = List()
    profile, log = users["ada"], users["ada-log"]
    for key, value in [("name", "Ada Lovelace"), ("born", 1815), ("email", "ada@example.org"),
                       ("city", "London"), ("zip", "W1"), ("id", 12345)]:  # fmt: skip
        profile[key] = value
    log.extend(["login", "logout", 3, 4.5, b"6", None, ("t", 1), "end"])
    assert tables_of(profile._token) == [] and tables_of(log._token) == []
    assert users["ada"]["city"] == "London" and users["ada-log"][-1] == "end"
    profile["one more"] = True  # the seventh: a table segment of its own from now on
    log.append("ninth")
    assert tables_of(profile._token) and tables_of(log._token)
    assert len(users["ada"]) == 7 and users["ada-log"][8] == "ninth"


def test_dropping_objects_that_never_left_their_slot_looks_for_no_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A List or Dict that never grew out of its slot nor escaped this process has no
    table segment: dropping it (or exiting with it held, a million times over) looks for
    none in /dev/shm.  One that grew has its tables removed as before."""
    from procshare._shm import generations

    looked: list[tuple[Any, ...]] = []
    remove = generations._remove_table
    monkeypatch.setattr(generations, "_remove_table", lambda *a: looked.append(a) or remove(*a))
    kept: list[Any] = [List([i]) for i in range(100)] + [Dict(k=i) for i in range(100)]
    kept[0].append(1)
    kept[100]["j"] = 2
    assert kept[0] == [0, 1] and kept[100] == {"k": 0, "j": 2}
    del kept
    gc.collect()
    assert looked == []
    grown = List([0])
    grown.extend(range(1, 100))
    token = grown._token
    assert grown._gen == 2 and tables_of(token)
    del grown
    gc.collect()
    assert looked and tables_of(token) == []


def test_a_new_list_or_dict_handed_to_a_dict_is_shared_without_its_slot_made() -> None:
    """``d[user] = List()`` names the new object without making its Slot, lock or token
    (they are made when first needed); the slot still counts as handed out, so it is
    never reused while the Dict holds the handle, and other processes use it."""
    d = Dict()
    fresh_list, fresh_dict = List([1]), Dict(a=1)
    d["list"], d["dict"] = fresh_list, fresh_dict
    assert fresh_list._place is not None and fresh_dict._place is not None
    names = {d["list"].name, d["dict"].name}
    del fresh_list, fresh_dict
    gc.collect()
    taken = [List() for _ in range(50)] + [Dict() for _ in range(50)]  # freed slots go first
    assert names.isdisjoint(t.name for t in taken)
    ctx = mp.get_context("fork")
    run_all(ctx, workers.grow_nested, [(d,)] * 2)
    assert d["list"][0] == 1 and sorted(d["list"][1:]) == sorted(2 * list(range(300)))
    assert d["dict"]["a"] == 1 + 2 * 300 and len(d["dict"]) == 1 + 2 * 300


def test_a_new_list_inherited_by_fork_keeps_its_tables_for_the_creator() -> None:
    """A List made and left untouched before a fork: the child grows it out of its slot,
    unlinks it and exits; the creator, counted among its users from the start, still
    reads it, and its tables go when the creator lets go."""
    items = List()
    ctx = mp.get_context("fork")
    p = ctx.Process(target=workers.grow_and_unlink, args=(items, 500))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert len(items) == 500 and items[499] == 499 and items._gen > 1
    token = items._token
    assert tables_of(token)
    del items
    gc.collect()
    assert tables_of(token) == []


def _mapped(token: str) -> list[str]:
    """The tables of token this process maps now (from /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if f"~{token}." in line})


def test_reaching_a_grown_list_by_name_maps_its_table_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``d[user]`` on a List that grew out of its slot maps its table the first time
    only; a newer generation (grown by another process) takes the old one's place,
    and at most MAX tables are kept mapped."""
    from procshare._shm import generations
    from procshare._shm.segment import Segment

    d = Dict()
    for user in range(8):
        items = List([user])
        d[user] = items
        items.extend(range(100))  # out of the slot: a table segment of its own
    token = d[0]._token
    del items
    attached: list[str] = []
    attach = Segment.attach

    def counted(name: str, *args: Any, **kwargs: Any) -> Segment:
        attached.append(name)
        return attach(name, *args, **kwargs)

    monkeypatch.setattr(Segment, "attach", counted)
    for _ in range(50):
        assert d[0][-1] == 99 and len(d[0]) == 101
    assert [n for n in attached if "~" in n] == []  # kept since it was built here
    assert len(_mapped(token)) == 1
    ctx = mp.get_context("fork")
    run_all(ctx, workers.extend_user_list, [(d, 0, 1000)])  # a newer generation
    assert len(d[0]) == 1101 and d[0][-1] == 999
    assert len([n for n in attached if "~" in n]) == 1
    gc.collect()
    assert len(_mapped(token)) == 1  # the old generation was let go
    monkeypatch.setattr(generations._Tables, "MAX", 3)
    tokens = [token]
    for user in range(8, 16):
        items = List([user])
        d[user] = items
        items.extend(range(100))
        tokens.append(items._token)
    del items
    for user in range(1, 16):
        assert d[user][-1] == 99 and d[user][0] == user
    gc.collect()
    assert sum(len(_mapped(t)) for t in tokens) <= 3


def test_a_kept_table_does_not_keep_its_root_in_use() -> None:
    """A table kept mapped for reaching is not a user: when the root's last holder lets
    go after unlink, its tables' names go, and a new object never meets the old table."""
    d = Dict()
    d["u"] = items = List([0])
    items.extend(range(100))
    token, name = items._token, items.name
    del items
    assert d["u"][-1] == 99  # reached by name: its table is kept mapped here
    assert tables_of(token)
    d["u"].unlink()
    del d["u"]
    gc.collect()
    assert tables_of(token) == []
    with pytest.raises(procshare.NotFoundError):
        List._attach(name)


def test_lists_dropped_after_growing_keep_no_table_mapped() -> None:
    """A table kept mapped goes with its root: making and dropping grown Lists (in a
    slot or a segment of their own) leaves none of their tables mapped nor named."""
    tokens = []
    for n in range(40):
        items = List([n]) if n % 2 else List(range(100))
        items.extend(range(200))
        tokens.append(items._token)
        del items
    gc.collect()
    assert [t for t in tokens if _mapped(t) or tables_of(t)] == []


class _MyList(List):
    """A user's subclass: its handle names its class, so it is pickled."""


def test_procshare_objects_are_stored_as_handles_not_pickles() -> None:
    """A List, Dict or Counter stored in a Dict, a List or a Queue is stored as its
    handle (kind, mode, name: no pickle to build or to load) and comes back as the same
    object, in this process and another; a Value (a lock around a RawValue), a lock
    (whose handle carries its offset) or a subclass is pickled as before.  A damaged
    record fails cleanly."""
    from procshare._shm.codec import decode_value, encode_value

    handled = [List([1]), Dict(a=1), procshare.Counter(2)]
    pickled = [procshare.Value("q", 3), procshare.Lock(), _MyList([4])]
    for obj in handled:
        tag, data = encode_value(obj)  # a new List's or Dict's record is the core's
        assert tag == 4 and data == bytes([obj._kind, 0o600 & 0xFF, 0o600 >> 8]) + obj.name.encode()
    shared = List(mode=0o660)  # its record carries its mode
    assert encode_value(shared)[1][1:3] == bytes([0o660 & 0xFF, 0o660 >> 8])
    assert decode_value(*encode_value(shared)) == shared
    assert [encode_value(obj)[0] for obj in pickled] == [1, 1, 1]
    objs = handled + pickled
    outer, seq, q = Dict(enumerate(objs)), List(objs), procshare.Queue()
    for obj in objs:
        q.put(obj)
    for got in ([outer[i] for i in range(len(objs))], list(seq), [q.get(timeout=10) for _ in objs]):
        assert [type(g) for g in got] == [type(o) for o in objs] and got == objs
    ctx = mp.get_context("fork")
    run_all(ctx, workers.touch_stored, [(outer,)])
    assert handled[0] == [1, 5] and handled[1] == {"a": 1, "b": 2}
    assert handled[2].value == 3 and pickled[0].value == 4 and pickled[2] == [4, 6]
    with pytest.raises(ValueError, match="damaged"):
        decode_value(4, b"\x10")
    with pytest.raises(procshare.NotFoundError):
        decode_value(4, b"\x10\x80\x01" + handled[0].name.encode() + b"0")
