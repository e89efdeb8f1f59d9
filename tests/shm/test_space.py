"""Space: a full /dev/shm raises SpaceError at creation or growth, never SIGBUS later."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap

import pytest

import procshare
from procshare import Array, SpaceError


def in_small_shm(code: str, size: str = "2m") -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter whose /dev/shm is a private tmpfs of size bytes."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs /dev/shm"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'mount -t tmpfs -o size={size} tmpfs /dev/shm && exec "$0" -c "$1"',
         sys.executable, textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_size_that_cannot_fit_is_refused_with_the_sizes() -> None:
    with pytest.raises(
        SpaceError, match=r"needs \d{13} bytes and /dev/shm has \d+ bytes free"
    ) as e:
        Array("i", 10**12)
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    assert isinstance(e.value, procshare.ProcshareError)


def test_a_full_shm_raises_at_creation_and_growth_and_leaves_nothing() -> None:
    r = in_small_shm("""
        import errno, os, procshare
        from procshare import Array, Dict, List, Queue, SpaceError

        def refused(make):
            try:
                make()
            except SpaceError as e:
                assert e.errno == errno.ENOSPC
                return True
            return False

        assert refused(lambda: Array("b", 3 * 2**20))
        assert refused(lambda: Queue(capacity=3 * 2**20, name="q"))
        assert os.listdir("/dev/shm") == [], os.listdir("/dev/shm")  # nothing left behind

        arrays = []
        while not refused(lambda: arrays.append(Array("b", 2**18))):
            pass
        arrays[-1][2**18 - 1] = 1  # every page of every array made can be touched
        assert len(arrays) >= 4
        del arrays

        d = Dict(name="d")
        n = 0
        try:
            while True:  # grows generation after generation until /dev/shm is full
                d[n] = "x" * 200
                n += 1
        except SpaceError:
            pass
        assert n > 100 and len(d) == n and d[n - 1] == "x" * 200  # unchanged by the failure
        items = List(range(10))
        try:
            while True:
                items.extend(["y" * 500] * 100)
        except SpaceError:
            pass
        assert items[:10] == list(range(10))
        print("ok", n)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")


def test_small_objects_stop_at_a_full_shm_with_space_error_and_every_one_made_works() -> None:
    """An arena backs its pages as its slots are handed out: when /dev/shm is full, the
    next object raises SpaceError, every one made before can be written (no SIGBUS),
    and one freed makes room again."""
    r = in_small_shm(
        size="1536k",
        code="""
        import errno, gc, procshare

        counters = []
        for attempt in range(2):  # the failure changed nothing: the next one fails alike
            try:
                while True:
                    counters.append(procshare.Counter())
            except procshare.SpaceError as e:
                assert e.errno == errno.ENOSPC and "arena" in str(e) and "full" in str(e), e
        for c in counters:
            c += 1
        assert sum(c.value for c in counters) == len(counters) > 10_000
        del counters[-10:], c
        gc.collect()
        again = [procshare.Counter() for _ in range(10)]  # in the slots freed
        assert all(c.value == 0 for c in again)
        print("ok", len(counters))
    """,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")


def test_rewrites_keep_working_when_shm_cannot_spare_their_extra_room() -> None:
    r = in_small_shm("""
        import procshare
        d = procshare.Dict(name="d")
        d.update({k: "v" * 1024 for k in range(150)})  # 150 KiB live: 8x would not fit 2 MiB
        for round in range(20):  # each round rewrites every value: rebuild after rebuild
            for k in range(150):
                d[k] = str(round) * 1024
        assert all(d[k] == "19" * 1024 for k in range(150))
        print("ok")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")


def test_a_queue_backs_a_shard_when_a_producer_first_uses_it() -> None:
    """A sharded queue takes memory for shard 0 (its creator's) at creation and for
    another shard when a process whose shard it is first puts; with /dev/shm full,
    such a process puts into shard 0.  Each producer's messages stay in order."""
    r = in_small_shm("""
        import os, multiprocessing as mp
        import procshare
        q = procshare.Queue(shards=8, capacity=256 * 1024, name="q")
        path = "/dev/shm/procshare.q"
        used = lambda: os.stat(path).st_blocks * 512
        at_creation = used()
        assert at_creation < 300 * 1024, at_creation  # the header and one shard, not eight
        q.put(b"first")  # the creator's shard: 0, backed with the segment
        assert used() == at_creation

        def produce(tag):
            for i in range(100):  # a handle per put: one process, one shard all the same
                procshare.Queue(name="q").put((tag, i))

        ctx = mp.get_context("fork")
        backed, fell_back = {0}, 0
        for tag in "abcdef":
            if tag == "d":  # from here, /dev/shm has too little left to back a shard
                free = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize
                filler = procshare.Array("b", free - 64 * 1024)
            before = used()
            p = ctx.Process(target=produce, args=(tag,))
            p.start()
            p.join(30)
            assert p.exitcode == 0
            shard = (p.pid - os.getpid()) % 8
            grew = used() - before
            if tag < "d" and shard not in backed:
                assert grew >= 256 * 1024, (tag, shard, grew)
                backed.add(shard)
            else:  # already backed, or put into shard 0 for want of memory
                assert grew < 64 * 1024, (tag, shard, grew)
                fell_back += shard not in backed
        assert fell_back  # children are forked with consecutive pids: shards 4, 5, 6
        got = q.get_many(1000, timeout=5)
        while len(got) < 601:
            got += q.get_many(1000, timeout=5)
        assert b"first" in got
        for tag in "abcdef":
            assert [m[1] for m in got if isinstance(m, tuple) and m[0] == tag] == list(range(100))
        print("ok")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")
