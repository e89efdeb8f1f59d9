"""Named segments: create-or-attach, header checks, names, modes, lifetimes."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest

import procshare
from procshare import Array, Counter, Lock, RLock, Value
from procshare._shm.segment import LAYOUT_VERSION

SHM = "/dev/shm/procshare."


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh, unrelated interpreter."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_create_or_attach_by_name(name: str) -> None:
    v = Value("q", 5, name=name)
    w = Value("q", 99, name=name)  # exists: attaches, initial value ignored
    w += 1
    assert v.value == 6 and v.name == name == w.name
    assert stat.S_IMODE(os.stat(SHM + name).st_mode) == 0o600
    v.unlink()
    assert not os.path.exists(SHM + name)
    assert w.add(1) == 7  # still mapped after unlink
    with pytest.raises(procshare.NotFoundError):
        Value._attach(name)


def test_attach_another_kind_or_layout_raises(name: str) -> None:
    Counter(name=name)
    with pytest.raises(procshare.KindError, match="counter"):
        Value("q", name=name)
    with pytest.raises(procshare.KindError):
        Lock(name=name)
    with pytest.raises(TypeError):  # KindError is a TypeError
        Array("q", 1, name=name)


def test_attach_other_typecode_or_length_raises(name: str) -> None:
    Value("i", name=name)
    with pytest.raises(procshare.KindError, match="typecode"):
        Value("d", name=name)
    other = name + "-arr"
    a = Array("i", 4, name=other)
    with pytest.raises(procshare.KindError):
        Array("i", 5, name=other)
    with pytest.raises(procshare.KindError):
        Array("q", 4, name=other)
    a.unlink()


def test_lock_kinds_are_distinct(name: str) -> None:
    lock = Lock(name=name)
    assert Lock(name=name).name == lock.name
    with pytest.raises(procshare.KindError):
        RLock(name=name)


@pytest.mark.parametrize(
    "bad", ["", "a/b", "../etc", ".hidden", "_reserved", "x" * 201, "sp ace", "é", "a\0b"]
)
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid name"):
        Value("i", name=bad)


def test_non_string_name_is_refused() -> None:
    with pytest.raises(TypeError):
        Counter(name=5)  # type: ignore[arg-type]


def corrupt(name: str, offset: int, data: bytes) -> None:
    with open(SHM + name, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize(
    ("offset", "data", "exc", "match"),
    [
        (0, b"GARBAGE!", procshare.CorruptSegmentError, "magic"),
        (60, b"\xff\xff\xff\xff", procshare.CorruptSegmentError, "checksum"),
        (252, b"\x07\x00\x00\x00", procshare.CorruptSegmentError, "state"),
    ],
)  # fmt: skip
def test_damaged_header_fails_cleanly(
    name: str, offset: int, data: bytes, exc: type[Exception], match: str
) -> None:
    Counter(3, name=name)
    corrupt(name, offset, data)
    with pytest.raises(exc, match=match):
        Counter(name=name)


def test_other_layout_version_is_refused(name: str) -> None:
    Counter(name=name)
    with open(SHM + name, "r+b") as f:
        header = bytearray(f.read(240))
        struct.pack_into("<I", header, 8, LAYOUT_VERSION + 1)
        f.seek(0)
        f.write(header + struct.pack("<I", zlib.crc32(header)))
    with pytest.raises(procshare.VersionError):
        Counter(name=name)


def test_truncated_or_foreign_file_fails_cleanly(name: str) -> None:
    with open(os.open(SHM + name, os.O_CREAT | os.O_WRONLY, 0o600), "wb") as f:
        f.write(b"not a segment" * 40)
    with pytest.raises(procshare.CorruptSegmentError):
        Counter(name=name)


def test_unrelated_process_attaches_by_name(name: str) -> None:
    c = Counter(40, name=name)
    arr = Array("d", [0.5, 1.5], name=name + "-a")
    r = run_python(f"""
        import procshare
        c = procshare.Counter(name={name!r})
        c += 2
        a = procshare.Array("d", name={name + "-a"!r})
        a[1] = a[0] + a[1]
        print(c.value)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "42" and c.value == 42 and arr[1] == 2.0
    assert r.stderr == ""  # no resource-tracker warnings
    arr.unlink()


def test_attaching_process_never_unlinks(name: str) -> None:
    Counter(name=name)
    r = run_python(f"import procshare; procshare.Counter(name={name!r}); procshare.Value('i')")
    assert r.returncode == 0 and r.stderr == ""
    assert os.path.exists(SHM + name)


def test_anonymous_objects_go_away_with_their_creator() -> None:
    r = run_python("""
        import pickle
        from procshare import Array, Counter, Lock, Value
        kept = [Value('i', 1), Array('d', 3), Counter(), Lock()]
        pickle.dumps(kept)  # escaped handles stay until exit
        print(' '.join(o.name for o in kept))
    """)
    assert r.returncode == 0, r.stderr
    for n in r.stdout.split():  # a segment, or a slot in an arena segment
        assert not os.path.exists(SHM + n.split("@")[0])


def test_anonymous_object_never_pickled_is_unlinked_when_collected() -> None:
    from procshare._shm.segment import Segment

    a = Array("d", 100)  # too large for an arena's slot: a segment of its own
    n = a._seg.name  # not .name: asking for the name shares the object
    assert "@" not in n and os.path.exists(SHM + n)
    del a
    assert not os.path.exists(SHM + n)
    named = Array("d", 100)
    n = named.name  # given out: another process may attach it by this name
    del named
    assert os.path.exists(SHM + n)
    c = Counter()  # a slot in an arena: freed for the next small object
    n = c._seg.name
    assert Segment.attach(n).kind == procshare._shm.names.Kind.COUNTER
    del c
    with pytest.raises(procshare.NotFoundError):
        Segment.attach(n)
    reused = Counter()
    assert reused.name.split(".")[0] == n.split(".")[0] and reused.name != n  # new generation
    assert reused.value == 0
    d = Counter()
    n = d.name
    import pickle

    pickle.dumps(d)
    del d  # its handle escaped: another process may still attach it
    assert Segment.attach(n).kind == procshare._shm.names.Kind.COUNTER
    assert os.path.exists(SHM + n.split("@")[0])


def test_segment_being_created_is_waited_for(name: str) -> None:
    # An unfinished segment (state 0, no header) makes attach wait, then fail clearly.
    with open(os.open(SHM + name, os.O_CREAT | os.O_WRONLY, 0o600), "wb") as f:
        f.write(b"\0" * 4096)
    procshare._shm.segment._ATTACH_WAIT, old = 0.2, procshare._shm.segment._ATTACH_WAIT
    try:
        with pytest.raises(procshare.CorruptSegmentError, match="never completed"):
            Counter(name=name)
    finally:
        procshare._shm.segment._ATTACH_WAIT = old


def test_every_object_kind_has_its_class() -> None:
    from procshare._shm import names as _names

    objects = set(_names.Kind) - _names.TABLE_KINDS - {_names.Kind.ARENA}
    assert _names.class_of(_names.Kind.ARENA) is None  # it holds objects, it is none
    assert {k for k in objects if _names.class_of(k) is None} == set()
    for kind in objects:
        cls = _names.class_of(kind)
        assert cls._kind is kind and cls.__module__.startswith("procshare.")
    assert all(_names.class_of(k) is None for k in _names.TABLE_KINDS)
