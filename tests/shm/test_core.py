"""The native core on its own: bounds checks, alignment, atomics, futex wait and wake."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from procshare import _core

from conftest import wait_asleep

SIZE = 4096


@pytest.fixture
def mapping() -> Iterator[_core.Mapping]:
    path = f"/procshare.test-core-{uuid.uuid4().hex[:8]}"
    fd = _core.shm_open(path, True, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        yield _core.Mapping(fd, SIZE)
    finally:
        os.close(fd)
        _core.shm_unlink(path)


@pytest.mark.parametrize("offset", [-8, SIZE - 4, SIZE, SIZE + 8, 2**62])
def test_out_of_bounds_cell_is_refused(mapping: _core.Mapping, offset: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        _core.Cell(mapping, offset, "q")


def test_misaligned_cell_is_refused(mapping: _core.Mapping) -> None:
    with pytest.raises(ValueError, match="aligned"):
        _core.Cell(mapping, 4, "q")
    with pytest.raises(ValueError, match="aligned"):
        _core.Mutex(mapping, 12, False)


def test_array_that_does_not_fit_is_refused(mapping: _core.Mapping) -> None:
    with pytest.raises(ValueError, match="outside"):
        _core.CellArray(mapping, 0, "q", SIZE // 8 + 1)
    with pytest.raises(ValueError):
        _core.CellArray(mapping, 0, "q", 2**62)
    with pytest.raises(ValueError):
        _core.CellArray(mapping, 0, "q", -1)


def test_futex_wait_times_out_and_wakes(mapping: _core.Mapping) -> None:
    t0 = time.monotonic()
    assert mapping.wait(0, 0, 0.05) is False
    assert time.monotonic() - t0 >= 0.04
    assert mapping.wait(0, 1, 1.0) is True  # the word is not 1: returns at once
    word = _core.Cell(mapping, 0, "I")
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(mapping.wait(0, 0, 10)))
    t.start()
    wait_asleep(os.getpid(), t.native_id)
    word.store(1)
    mapping.wake(0)
    t.join(5)
    assert woke == [True]


def test_wait_rejects_bad_arguments(mapping: _core.Mapping) -> None:
    with pytest.raises(ValueError):
        mapping.wait(0, 0, -1)
    with pytest.raises(OverflowError):
        mapping.wait(0, 2**32, 0)
    with pytest.raises(ValueError, match="outside"):
        mapping.wake(SIZE)


def test_mapping_buffer_is_shared_memory(mapping: _core.Mapping) -> None:
    view = memoryview(mapping)
    assert len(view) == SIZE and mapping.size == SIZE
    _core.Cell(mapping, 8, "Q").store(0x0102030405060708)
    assert bytes(view[8:16]) == (0x0102030405060708).to_bytes(8, "little")


def test_bad_mapping_arguments() -> None:
    with pytest.raises(ValueError):
        _core.Mapping(0, 0)
    with pytest.raises(OSError):
        _core.Mapping(-1, 4096)
    with pytest.raises(TypeError):
        _core.Cell(object(), 0, "q")


def test_pid_alive() -> None:
    assert _core.pid_alive(os.getpid())
    assert not _core.pid_alive(0)
    assert not _core.pid_alive(2**31 - 1)
