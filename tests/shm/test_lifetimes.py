"""Names and lifetimes of objects spread over several segments (Dict and List tables)."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import subprocess
import sys

from procshare import Dict, List, Value
from procshare._shm import inventory as _inventory
from procshare._shm import names as _names
from procshare._shm.arena import census
from procshare._shm.segment import Segment

import workers
from conftest import run_all

SHM = "/dev/shm/procshare."


def files(name: str) -> list[str]:
    """The segments of the object name: its root and its tables."""
    return sorted(
        f for f in os.listdir("/dev/shm") if f in (f"procshare.{name}",)
        or f.startswith(f"procshare.{name}~")
    )  # fmt: skip


def test_tables_never_take_a_users_name(name: str) -> None:
    one, two = Value("i", 1, name=f"{name}.g1"), Value("i", 7, name=f"{name}.g2")
    d = Dict({"a": 1}, name=name)
    items = List(name=name + "l")
    items.extend(range(5000))  # several generations
    d.update({i: i for i in range(5000)})
    assert one.value == 1 and two.value == 7
    assert Value("i", name=f"{name}.g2").value == 7
    assert all(_names.parse_table(f[len("procshare.") :]) for f in files(name)[1:])
    for obj in (one, two, d, items):
        obj.unlink()


def test_cleanup_removes_only_tables_whose_header_names_their_root(name: str) -> None:
    d = Dict({"a": 1}, name=name)
    token = d._token
    decoy = Value("i", 5, name=name + "-decoy")
    forged = f"{name}~{token}.{d._gen + 1}"  # where the next generation will be looked for
    os.rename(SHM + decoy.name, SHM + forged)
    d.unlink()
    del d
    gc.collect()
    assert os.path.exists(SHM + forged)  # a Value's header: not this Dict's table
    os.unlink(SHM + forged)


def test_cleanup_removes_a_table_a_killed_writer_left_half_built(name: str) -> None:
    """A writer killed while creating the next generation, before its header, leaves a
    segment with no header under the table's name: the object's token is in that name
    and the segment is this user's, so it goes with the object."""
    for written in (0, 8192):  # killed before or after sizing it
        d = Dict({"a": 1}, name=name)
        token = d._token
        unfinished = SHM + f"{name}~{token}.{d._gen + 1}"
        fd = os.open(unfinished, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, written)
        os.close(fd)
        d.unlink()
        del d
        gc.collect()
        assert not os.path.exists(unfinished)


def test_rm_removes_a_dicts_tables(name: str) -> None:
    code = f"import procshare; procshare.Dict({{i: 'x' * 50 for i in range(3000)}}, name={name!r})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert len(files(name)) == 2
    r = subprocess.run(
        [sys.executable, "-m", "procshare", "rm", name], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert files(name) == []


def test_holders_keep_using_an_unlinked_dict_and_nothing_is_left(name: str) -> None:
    d = Dict({"a": 1}, name=name)
    ctx = mp.get_context("fork")
    started, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=workers.grow_dict_after, args=(d, started, go, 4000))
    child.start()
    assert started.wait(30)
    d.unlink()  # the child holds it: it keeps working, and grows it through new tables
    go.set()
    child.join(60)
    assert child.exitcode == 0
    assert len(d) == 4001 and d[3999] == 3999  # written after unlink, followed by name
    d[4000] = "parent after unlink"
    assert files(name) != []
    del d
    gc.collect()
    assert files(name) == []  # the last holder let go: the tables went too


def test_an_unlinked_list_is_cleaned_up_at_exit(name: str) -> None:
    code = (
        f"import procshare; x = procshare.List(range(10), name={name!r}); x.unlink(); "
        "x.extend(range(100000)); print(len(x))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "100010", r.stderr
    assert files(name) == []


def test_a_process_exiting_with_handles_held_leaves_only_what_another_holds() -> None:
    """A process that exits holding Lists and Dicts (in arena slots, named or never
    named, some grown into table segments; one with a segment of its own) takes them
    all with it, except the tables of one that another live process holds, which go
    when that process lets go."""
    code = """
import sys, procshare as ps
kept = [ps.List() for _ in range(40)] + [ps.Dict() for _ in range(40)]
named = [x.name for x in kept[::2]]
for x in kept[:10]:
    x.extend(range(300))
for x in kept[40:50]:
    x.update({i: i for i in range(300)})
big = ps.List(range(20_000))
print(named[0], flush=True)
sys.stdin.readline()
"""
    with subprocess.Popen([sys.executable, "-c", code], text=True, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as p:  # fmt: skip
        assert p.stdout is not None
        try:
            name = p.stdout.readline().strip()
            held = List._attach(name)  # grown: its table is a segment of its own
            mine = [f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{p.pid}_")]
            assert len(mine) > 20 and any("~" in f for f in mine)
            p.communicate("exit\n", timeout=60)
        finally:
            p.kill()
    assert p.returncode == 0
    left = [f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{p.pid}_")]
    assert left and all("~" in f for f in left)  # the held List's table, nothing else
    assert held == list(range(300)) and held.pop() == 299
    del held
    gc.collect()
    assert [f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{p.pid}_")] == []


def test_dropped_anonymous_dicts_are_released() -> None:
    before = {f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{os.getpid()}_")}
    for i in range(300):
        d = Dict({"i": i})
        d["more"] = list(range(50))
        items = List([i])
        items.extend(range(200))
    del d, items
    gc.collect()
    now = {f for f in os.listdir("/dev/shm") if f.startswith(f"procshare._{os.getpid()}_")}
    # Their roots were in arena slots, freed for reuse; their grown tables are gone.
    for file in now - before:
        seg = Segment.attach(file[len(_names.PREFIX) :], _names.Kind.ARENA)
        assert census(seg)["objects"] == 0, file


def test_a_dict_shared_with_a_forked_child_outlives_its_handle() -> None:
    d = Dict({"a": 1})
    run_all(mp.get_context("fork"), workers.dict_set, [(d, "child", 2)])
    name = d.name
    del d
    gc.collect()
    # a child was forked: it (or a grandchild) may still attach by name until this exits
    again = Dict._attach(name)
    assert again["child"] == 2
    _inventory.remove(name)
