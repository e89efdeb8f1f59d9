"""Array and RawArray: the sequence API against a list model, text arrays, numpy views."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from procshare import Array, RawArray


@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=30),
    st.lists(st.tuples(st.integers(-40, 40), st.integers(-40, 40), st.sampled_from([1, 2, -1, 3])),
             max_size=10),
)  # fmt: skip
def test_slices_match_list(initial: list[int], slices: list[tuple[int, int, int]]) -> None:
    arr = RawArray("i", initial)
    model = list(initial)
    assert arr[:] == model and len(arr) == len(model) and list(arr) == model
    for start, stop, step in slices:
        s = slice(start, stop, step)
        assert arr[s] == model[s]
        new = [x // 2 for x in model[s]]
        arr[s] = new
        model[s] = new
        assert arr[:] == model
    for i in range(-len(model), len(model)):
        assert arr[i] == model[i]


def test_element_atomics() -> None:
    arr = Array("q", 4)
    assert arr.fetch_add(1, 5) == 0 and arr.add(1, 5) == 10 and arr.sub(-1, 2) == -2
    assert arr.exchange(0, 7) == 0 and arr.compare_exchange(0, 7, 8) and arr.load(0) == 8
    assert arr.fetch_or(2, 6) == 0 and arr.fetch_and(2, 3) == 6 and arr.fetch_xor(2, 1) == 2
    arr.store(2, 9)
    assert arr[:] == [8, 10, 9, -2]
    with pytest.raises(IndexError):
        arr.fetch_add(4, 1)
    with pytest.raises(IndexError):
        arr[-5]
    with pytest.raises(TypeError):
        del arr[0]


def test_char_array_value_and_raw() -> None:
    s = Array("c", b"hello")
    assert s.value == b"hello" and s.raw == b"hello" and s[1] == b"e" and s[1:3] == b"el"
    s.value = b"hi"
    assert s.value == b"hi" and s.raw == b"hi\0lo"
    s.raw = b"HELLO"
    assert s.value == b"HELLO"
    with pytest.raises(ValueError):
        s.value = b"toolong"
    assert s.value == b"HELLO"
    w = Array("u", "abc")
    assert w[:] == "abc" and w.value == "abc"
    w.value = "z"
    assert w.value == "z"
    with pytest.raises(AttributeError):
        _ = Array("i", 3).value
    with pytest.raises(AttributeError):
        _ = w.raw


def test_numpy_view_shares_memory_without_copy() -> None:
    arr = Array("d", 8)
    view = np.asarray(arr)
    assert view.dtype == np.float64 and view.shape == (8,)
    view[3] = 2.5
    assert arr[3] == 2.5
    arr[4] = -1.0
    assert view[4] == -1.0
    other = pickle.loads(pickle.dumps(arr))
    other[0] = 9.0
    assert view[0] == 9.0
    assert np.shares_memory(view, np.asarray(arr))
    for code, dtype in [("i", np.int32), ("B", np.uint8), ("q", np.int64), ("f", np.float32)]:
        assert np.asarray(RawArray(code, 2)).dtype == dtype
    m = memoryview(Array("h", 3))
    assert m.format == "h" and m.itemsize == 2 and not m.readonly


def test_slice_assignment_is_all_or_nothing() -> None:
    arr = Array("b", [1, 2, 3])
    with pytest.raises(OverflowError):
        arr[:] = [4, 500, 6]
    with pytest.raises(ValueError, match="same size"):
        arr[:] = [1, 2]
    with pytest.raises(TypeError):
        arr[:] = 5
    assert arr[:] == [1, 2, 3]


def test_constructor_errors_leave_nothing(name: str) -> None:
    with pytest.raises(OverflowError):
        Array("b", [1, 1000], name=name)
    with pytest.raises(FileNotFoundError):
        RawArray("b", name=name)  # attach only: the failed create left no segment
    with pytest.raises(ValueError):
        Array("i", -1)
    with pytest.raises(TypeError):
        Array("i", 2.5)
    with pytest.raises(TypeError):
        Array("i")


def test_wrapper_api_and_attach_by_name(name: str) -> None:
    arr = Array("i", [1, 2, 3], name=name)
    same = Array("i", 3, name=name)  # attaches: the initializer is ignored
    same[0] = 10
    assert arr[0] == 10 and RawArray("i", name=name)[0] == 10
    with arr.get_lock():
        arr[1] += 1
    assert type(arr.get_obj()) is RawArray and arr.get_obj()[1] == 3
    assert repr(arr) == "Array('i', [10, 3, 3])"
    arr.unlink()


def test_empty_array() -> None:
    arr = RawArray("d", 0)
    assert len(arr) == 0 and arr[:] == [] and np.asarray(arr).shape == (0,)
