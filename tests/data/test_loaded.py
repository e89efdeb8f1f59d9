"""`v.value += n` as one atomic step: the numbers `.value` returns, in one process and many."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

import procshare
from procshare import Counter, Value, _core
from procshare._data.object_value import ObjectValue

from conftest import run_all


def test_loaded_numbers_are_the_numbers_they_hold() -> None:
    v, f = Value("i", 1234), Value("d", 2.5)
    x, y = v.value, f.value
    assert isinstance(x, int) and isinstance(y, float)
    assert x == 1234 and y == 2.5 and hash(x) == hash(1234) and hash(y) == hash(2.5)
    assert (x * 2, x // 7, -x, x > 1000, x & 0xFF, str(x), f"{x:06d}") == (
        2468, 176, -1234, True, 1234 & 0xFF, "1234", "001234")  # fmt: skip
    assert (y * 2, y / 2, str(y)) == (5.0, 1.25, "2.5")
    assert json.dumps([x, y]) == "[1234, 2.5]"
    for number, plain in ((x, int), (y, float)):
        for back in (pickle.loads(pickle.dumps(number)), copy.copy(number), copy.deepcopy(number)):
            assert type(back) is plain and back == number
    with pytest.raises(TypeError):
        _core.LoadedInt(5)
    with pytest.raises(TypeError):
        int.__new__(_core.LoadedInt, 5)


def test_loaded_numbers_work_with_numpy() -> None:
    np = pytest.importorskip("numpy")
    v, f = Value("q", -7), Value("d", 0.5)
    assert np.array([v.value, v.value]).tolist() == [-7, -7]
    assert np.int64(v.value) == -7 and np.float64(f.value) == 0.5


@pytest.mark.parametrize("code", "bBhHiIlLqQ")
def test_every_integer_typecode_reads_back_exactly(code: str) -> None:
    for x in (0, 1, 100, 127):
        v = Value(code, x)
        assert v.value == x and type(v.value) is _core.LoadedInt and v.load() == x
        assert type(v.load()) is int


def test_the_step_adds_to_what_the_value_holds_when_assigned() -> None:
    v = Value("i", 10)
    pending = v.value + 5
    v.value = 100  # another process's store, say
    v.value = pending  # the pending change adds 5 to what is there now
    assert v.value == 105
    v.value = v.value - 6
    assert v.value == 99
    v.value = 1 + v.value
    assert v.value == 100
    chained = v.value + 1 + 2
    v.value = 0
    v.value = chained
    assert v.value == 3


def test_everything_else_is_a_plain_store() -> None:
    v, w = Value("i", 10), Value("i", 0)
    doubled = v.value * 2
    v.value = 1
    v.value = doubled
    assert v.value == 20
    w.value = v.value + 1  # another object: the sum itself is stored
    v.value = 50
    assert w.value == 21
    v.value = 5
    assert v.value == 5


def test_integer_steps_wrap_like_the_c_type() -> None:
    q = Value("Q", 2**64 - 1)
    q.value += 1
    assert q.value == 0
    b = Value("b", 127)
    b.value += 1
    assert b.value == -128
    c = Counter(3)
    c.value -= 5
    assert c.value == -2


def test_float_values() -> None:
    f = Value("d", 1.0)
    f.value += 0.5
    f.value -= 2
    assert f.value == -0.5
    g = Value("f", 0.25)
    g.value += 1
    assert g.value == 1.25


def _bump(v: Any, n: int, step: Any) -> None:
    for _ in range(n):
        v.value += step


@pytest.mark.parametrize("code, step", [("i", 1), ("q", -3), ("d", 0.5)])
def test_value_plus_equals_is_exact_across_processes(ctx: Any, code: str, step: Any) -> None:
    v = Value(code, 0)
    run_all(ctx, _bump, [(v, 2_000, step)] * 4)
    assert v.value == 4 * 2_000 * step


def test_object_value_steps_are_exact_across_processes(ctx: Any) -> None:
    v = ObjectValue("tmp", 0)
    run_all(ctx, _bump, [(v, 500, 1)] * 4)
    assert v.value == 2_000 and v.get() == 2_000
    f = ObjectValue("tmp", 0.0)
    run_all(ctx, _bump, [(f, 300, 0.25)] * 3)
    assert f.value == 225.0


def test_object_value_sequences_add_in_one_step(ctx: Any) -> None:
    v = ObjectValue("tmp", "")
    run_all(ctx, _bump, [(v, 100, "x")] * 4)
    assert v.value == "x" * 400
    items = ObjectValue("tmp", [0])
    pending = items.value + [1]  # noqa: RUF005 (the form under test)
    items.value = [9]
    items.value = pending  # adds [1] to what it holds now
    assert items.value == [9, 1] and type(pickle.loads(pickle.dumps(items.value))) is list
    seen = items.value
    assert isinstance(seen, list) and json.dumps(seen) == "[9, 1]" and type(copy.copy(seen)) is list
    seen += [2]  # a list's += on the read copy is a pending change too, not an in-place extend
    assert items.value == [9, 1]
    items.value = seen
    assert items.value == [9, 1, 2]
    other = ObjectValue("tmp", "a")
    other.value = ObjectValue("tmp", "b").value + "c"  # another value's change: a plain store
    assert other.value == "bc"


def test_object_value_holds_any_picklable_value() -> None:
    v = ObjectValue("tmp", {"a": [1, 2]})
    assert v.value == {"a": [1, 2]} and repr(v) == "Value('tmp', {'a': [1, 2]})"
    v.value = v.value | {"b": 3}  # not an addition: a plain store
    assert v.value == {"a": [1, 2], "b": 3}
    v.set("text")
    assert v.get() == "text" and v._getvalue() == "text"
    back = pickle.loads(pickle.dumps(v))
    assert back.value == "text" and back.typecode == "tmp"
    assert isinstance(procshare.Value("i", 0).value, int)
