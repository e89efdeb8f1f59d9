"""Trust: segments of another user, or open to others, are refused unless shared on purpose."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from collections.abc import Callable

import pytest

import procshare
from procshare import Dict, List, Queue, UntrustedSegmentError, Value
from procshare._shm import inventory as _inventory

SHM = "/dev/shm/procshare."
NOBODY = 65534

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")


def as_other_user(plant: Callable[[], object]) -> None:
    """Run plant in a forked child that has become another user (uid and gid 65534)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            plant()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


class Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.marker, "w"))


@as_root
def test_a_dict_planted_by_another_user_is_refused(name: str) -> None:
    as_other_user(lambda: Dict({"planted": 1}, name=name, mode=0o666))
    with pytest.raises(UntrustedSegmentError, match="uid 65534") as refused:
        Dict(name=name)
    assert isinstance(refused.value, PermissionError)
    assert isinstance(refused.value, procshare.ProcshareError)
    assert "0o666" in str(refused.value)
    _inventory.remove(name)


@as_root
def test_a_queue_planted_by_another_user_never_runs_its_pickles(name: str, tmp_path: str) -> None:
    marker = f"/tmp/procshare-test-{name}"
    as_other_user(lambda: Queue(name=name, mode=0o666).put(Evil(marker)))
    with pytest.raises(UntrustedSegmentError):
        Queue(name=name)
    assert not os.path.exists(marker)
    _inventory.remove(name)


def test_own_segment_open_to_others_is_refused(name: str) -> None:
    v = Value("i", 7, name=name)
    os.chmod(SHM + name, 0o666)  # as if another program had opened it up
    with pytest.raises(UntrustedSegmentError, match="0o666"):
        Value("i", name=name)
    with pytest.raises(UntrustedSegmentError):  # a handle unpickled elsewhere too
        pickle.loads(pickle.dumps(v))
    v.unlink()


def test_sharing_is_an_explicit_choice(name: str) -> None:
    v = Value("i", 7, name=name, mode=0o660)
    assert stat.S_IMODE(os.stat(SHM + name).st_mode) == 0o660
    with pytest.raises(UntrustedSegmentError):
        Value("i", name=name)  # the default accepts nothing shared
    assert Value("i", name=name, mode=0o660).value == 7
    assert pickle.loads(pickle.dumps(v)).value == 7  # the handle carries the mode
    r = subprocess.run(
        [sys.executable, "-c", f"import procshare; print(procshare.Value('i', name={name!r}, "
         "mode=0o660).value)"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.stdout.strip() == "7", r.stderr
    v.unlink()


@pytest.mark.parametrize("bad", [0o700, 0o400, 0o1600, "0o600", True])
def test_bad_modes_are_refused(bad: object, name: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        Value("i", name=name, mode=bad)  # type: ignore[arg-type]
    assert not os.path.exists(SHM + name)


def test_every_table_a_dict_follows_is_checked(name: str) -> None:
    d = Dict({"a": 1}, name=name)
    os.chmod(SHM + d._table_seg.name, 0o666)
    with pytest.raises(UntrustedSegmentError):
        Dict(name=name)
    os.chmod(SHM + d._table_seg.name, 0o600)  # else its cleanup would rightly refuse it too
    d.unlink()


def test_ls_shows_owner_and_mode_and_flags_refused(name: str) -> None:
    mine, shared = List([1], name=name), Value("i", name=name + "-s", mode=0o640)
    os.chmod(SHM + name + "-s", 0o666)
    rows = {e.name: e for e in _inventory.entries()}
    assert rows[name].mode == 0o600 and not rows[name].refused
    assert rows[name + "-s"].mode == 0o666 and rows[name + "-s"].refused
    out = subprocess.run(
        [sys.executable, "-m", "procshare", "ls"], capture_output=True, text=True, timeout=60,
        check=False,
    ).stdout  # fmt: skip
    line = next(li for li in out.splitlines() if li.startswith(name + "-s "))
    assert "0o666" in line and "refused" in line
    assert name + "-s" not in {e.name for e in _inventory.leftovers()}
    mine.unlink()
    shared.unlink()


def test_a_shared_anonymous_object_goes_when_its_creator_exits() -> None:
    code = (
        "import pickle, procshare; v = procshare.Value('i', 1, mode=0o660); "
        "pickle.dumps(v); print(v.name); del v"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(SHM + r.stdout.strip())
