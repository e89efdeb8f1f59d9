"""List: list's behaviour (a state machine against list), appends from many processes,
readers beside rearranging writers, SIGKILL, nested objects."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import operator
import pickle
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from procshare import Counter, Dict, KindError, List, _core
from procshare._shm import inventory as _inventory

import workers
from conftest import kill_while_running, run_all

values = st.one_of(st.integers(-5, 5), st.text(max_size=2), st.none(), st.binary(max_size=2))
indices = st.integers(-6, 6)


class ListMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.shared: List = List()
        self.model: list[Any] = []

    @rule(v=values)
    def append(self, v: Any) -> None:
        self.shared.append(v)
        self.model.append(v)

    @rule(vs=st.lists(values, max_size=4))
    def extend(self, vs: list[Any]) -> None:
        self.shared += vs
        self.model += vs

    @rule(i=indices, v=values)
    def insert(self, i: int, v: Any) -> None:
        self.shared.insert(i, v)
        self.model.insert(i, v)

    @rule(i=indices, v=values)
    def setitem(self, i: int, v: Any) -> None:
        if -len(self.model) <= i < len(self.model):
            self.shared[i] = v
            self.model[i] = v
        else:
            with pytest.raises(IndexError):
                self.shared[i] = v

    @rule(i=indices)
    def pop(self, i: int) -> None:
        if -len(self.model) <= i < len(self.model):
            assert self.shared.pop(i) == self.model.pop(i)
        else:
            with pytest.raises(IndexError):
                self.shared.pop(i)

    @rule(a=indices, b=indices, step=st.sampled_from([1, 2, -1]))
    def delete_slice(self, a: int, b: int, step: int) -> None:
        del self.shared[a:b:step]
        del self.model[a:b:step]

    @rule(a=indices, b=indices, vs=st.lists(values, max_size=3))
    def set_slice(self, a: int, b: int, vs: list[Any]) -> None:
        self.shared[a:b] = vs
        self.model[a:b] = vs

    @precondition(lambda self: all(isinstance(v, int) for v in self.model))
    @rule(reverse=st.booleans())
    def sort(self, reverse: bool) -> None:
        self.shared.sort(reverse=reverse)
        self.model.sort(reverse=reverse)

    @rule()
    def reverse(self) -> None:
        self.shared.reverse()
        self.model.reverse()

    @rule(v=values)
    def remove(self, v: Any) -> None:
        if v in self.model:
            self.shared.remove(v)
            self.model.remove(v)
        else:
            with pytest.raises(ValueError):
                self.shared.remove(v)

    @invariant()
    def same(self) -> None:
        assert len(self.shared) == len(self.model) and self.shared == self.model
        assert list(self.shared) == self.model and self.shared.copy() == self.model
        for i in (0, -1, len(self.model) // 2):
            if self.model:
                assert self.shared[i] == self.model[i]


TestListMachine = ListMachine.TestCase
TestListMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


class _AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


_mixed = st.one_of(
    st.integers(-3, 3), st.sampled_from([1.0, 0.0, True, False, 2**70, -(2**63), None]),
    st.text(max_size=2), st.binary(max_size=2), st.tuples(st.integers(0, 2)),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_mixed, max_size=12), probe=_mixed, start=st.integers(-15, 15),
       stop=st.integers(-15, 15))  # fmt: skip
def test_scans_compare_as_list_does(items: list[Any], probe: Any, start: int, stop: int) -> None:
    """in, index, count and == scan in C, comparing stored bytes where that decides
    and == elsewhere: the answers are list's (1 == 1.0 == True, "1" != 1, ...)."""
    shared = List(items)
    assert (probe in shared) == (probe in items)
    assert shared.count(probe) == items.count(probe)
    try:
        expected: Any = items.index(probe, start, stop)
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError):
            shared.index(probe, start, stop)
    else:
        assert shared.index(probe, start, stop) == expected
    assert (shared == items) and (shared == List(items)) and shared != [*items, probe]
    assert shared == [x + 0 if type(x) is int else x for x in items]  # equal, not identical


def test_scans_run_user_eq_outside_the_lock() -> None:
    shared = List(["a", 1, _AlwaysEqual()])
    assert 5 in shared and shared.index(5) == 2 and shared.count(5) == 1
    assert shared.count("a") == 2 and shared == ["a", 1, "anything"]


def test_behaves_like_list() -> None:
    a, b = List([1, 2]), List([1, 2])
    assert a == b and a == [1, 2] and [1, 2] == a and a != [2] and (a != b) is False  # noqa: SIM300
    assert a < [1, 3] and List([3]) > a and a <= b and a >= [1]
    assert [0] + a == [0, 1, 2] and a + [3] == [1, 2, 3] and a + b == [1, 2, 1, 2]  # noqa: RUF005
    assert a * 2 == [1, 2, 1, 2] and 2 * a == [1, 2, 1, 2]
    a *= 2
    assert a == [1, 2, 1, 2] and a[::2] == [1, 1] and a[-1] == 2
    assert a.index(2) == 1 and a.index(2, 2) == 3 and a.count(1) == 2 and 2 in a
    assert list(reversed(a)) == [2, 1, 2, 1] and repr(b) == str(b) == "[1, 2]"
    assert type(a.copy()) is list
    with pytest.raises(IndexError):
        a[10]
    with pytest.raises(ValueError):
        a.index(9)
    with pytest.raises(TypeError):
        hash(a)
    a.append(a)
    assert repr(a) == "[1, 2, 1, 2, [...]]"


def test_bad_input_changes_nothing(name: str) -> None:
    items = List([1], name=name)
    with pytest.raises(Exception, match="pickle"):
        items.append(threading.Lock())
    with pytest.raises(Exception, match="pickle"):
        items.extend([2, threading.Lock()])
    assert items == [1]
    with pytest.raises(KindError):
        Dict(name=name)
    items.unlink()


def test_growth_keeps_every_element_and_compacts() -> None:
    items = List(["a"])
    items.extend(range(10_000))  # past the first table: grown, elements copied in C
    items.extend(["x" * 300] * 50)
    items.insert(5, ("t", 1))
    assert len(items) == 10_052 and items[:3] == ["a", 0, 1] and items[5] == ("t", 1)
    assert items[-1] == "x" * 300 and items.count("x" * 300) == 50
    generation = items._gen
    for i in range(300):  # each rewrite leaves garbage; a full heap grows and compacts
        items[0] = "y" * (i * 40)
    assert items._gen > generation and items[0] == "y" * 11_960 and items[1:3] == [0, 1]
    used, garbage, size = items._current().heap()
    assert garbage < used <= size and len(items) == 10_052


def test_packed_records_are_checked_before_anything_changes() -> None:
    items = List([1])
    _, packed = _core.pack([2, "two"], False)
    table = items._current()
    for bad in (packed[:-8], packed[:4], b"\xff\xff\xff\x7f\x00\x00\x00\x00"):
        with pytest.raises(ValueError, match="cut short"):
            table.extend_packed(bad, 0)
    for start in (3, -8, len(packed) + 8):
        with pytest.raises(ValueError, match="start"):
            table.extend_packed(packed, start)
    with pytest.raises(TypeError):
        table.copy_from(items)
    assert items == [1] and table.heap()[1] == 0
    assert table.extend_packed(packed, 0) == (2, len(packed)) and items == [1, 2, "two"]


def test_the_article_list_fills_from_ten_processes(ctx: Any) -> None:
    items = List()
    run_all(ctx, workers.list_append, [(items, p, 1) for p in range(10)])
    assert sorted(items) == [(p, 0) for p in range(10)]


def test_many_appends_are_exact_and_ordered_per_process(ctx: Any) -> None:
    items = List()
    run_all(ctx, workers.list_append, [(items, p, 500) for p in range(3)])
    assert len(items) == 1500
    for p in range(3):
        assert [i for q, i in items if q == p] == list(range(500))


def test_pickle_and_attach(name: str) -> None:
    items = List([1], name=name)
    List([9], name=name).append(2)  # attaches: the 9 is ignored
    assert items == [1, 2] and pickle.loads(pickle.dumps(items)) == [1, 2]
    items.unlink()


class Sub(List):
    def total(self) -> int:
        return sum(self)


def test_subclass() -> None:
    s = Sub([1, 2])
    assert s.total() == 3 and type(pickle.loads(pickle.dumps(s))) is Sub


def test_killed_appender_leaves_a_consistent_list() -> None:
    for _ in range(3):
        items = List()
        kill_while_running(workers.list_append_forever, (items,), (0.05, 0.3))
        assert len(items) >= 1  # killed while busy, after its first append
        items.append("after")
        seen = list(items)
        assert seen[-1] == "after"
        assert [i for _, i in seen[:-1]] == list(range(len(seen) - 1))  # no gaps, no tears


def test_readers_see_whole_states_while_elements_move(ctx: Any) -> None:
    """insert, pop(i), del and remove rewrite the inactive slot array and publish it
    with one store: readers in other processes see the old order or the new one."""
    items, bad = List(range(2000)), Counter()
    writer = ctx.Process(target=workers.list_shift_forever, args=(items, ctx.Event()))
    writer.start()
    try:
        run_all(ctx, workers.list_check_runs, [(items, 300, bad)] * 2, timeout=120)
    finally:
        writer.kill()
        writer.join(10)
    assert bad.value == 0


def test_killed_mover_leaves_a_whole_list() -> None:
    for _ in range(3):
        items = List(range(500))
        kill_while_running(workers.list_shift_forever, (items,), (0.05, 0.3))
        snap = items.copy()
        assert 499 <= len(snap) <= 501, len(snap)
        assert all(b == a + 1 for a, b in itertools.pairwise(snap))  # no tears
        items.insert(0, snap[0] - 1)  # and it still works
        assert items[0] == snap[0] - 1 and len(items) == len(snap) + 1


def test_nested_objects_by_reference() -> None:
    items = List([Counter(1)])
    counter = items[0]
    counter += 1
    assert items[0].value == 2


def test_table_grown_by_an_exited_child_is_not_a_leftover() -> None:
    # The current table of a List was created by a child that has exited: it belongs to
    # the List (whose creator lives), not to the dead child.
    items = List()
    run_all(mp.get_context("fork"), workers.list_append, [(items, "c", 200)])
    assert len(items) == 200
    current = items._table_seg.name
    assert current.startswith(items.name + "~") and items._gen > 1
    assert current not in {e.name for e in _inventory.leftovers()}


def test_iteration_reads_by_index_as_list_does() -> None:
    items = List([1, 2])
    seen = []
    for x in items:
        seen.append(x)
        if x < 3:
            items.append(x + 2)
    assert seen == [1, 2, 3, 4]
    it = iter(items)
    assert list(it) == [1, 2, 3, 4]
    items.append(5)
    assert list(it) == []  # exhausted stays exhausted
    assert list(reversed(items)) == [5, 4, 3, 2, 1]
    it, back = iter(items), reversed(items)
    next(it), next(back)
    assert operator.length_hint(it) == operator.length_hint(back) == 4
    del items[:3]  # shrinks under both, as under list's: [4, 5] left
    assert list(it) == [5] and list(back) == [] and operator.length_hint(it) == 0
    assert list(List()) == [] and list(reversed(List())) == []
    grown = List(range(30))  # a table of its own, read across generations
    it = iter(grown)
    assert [next(it) for _ in range(10)] == list(range(10))
    grown.extend(range(30, 2000))
    assert list(it) == list(range(10, 2000))


def test_behaves_as_list_where_code_can_tell() -> None:
    items = List([3, 1, 2])
    items.__init__([9, 8])  # type: ignore[misc]
    assert items == [9, 8] and str(items) == "[9, 8]"
    with pytest.raises(TypeError, match="list indices must be integers"):
        items["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        items["x"]  # type: ignore[index]
    with pytest.raises(TypeError, match="list indices must be integers"):
        del items["x"]  # type: ignore[arg-type]

    def key(x: int) -> int:
        items.append(0)
        return x

    with pytest.raises(ValueError, match="modified during sort"):
        items.sort(key=key)
    assert items[:2] == [9, 8]  # the sort changed nothing


class _Index:
    def __init__(self, i: int) -> None:
        self.i = int(i)

    def __index__(self) -> int:
        return self.i


def test_one_call_reads_and_appends_agree_with_list_at_every_edge() -> None:
    """len, l[i], l[i] = v, append and pop() are one C call on the current table, and go
    to Python on anything else (a slice, an index that is not an int, another generation,
    an empty list): both give what list gives, from the slot through generations of
    table segments."""
    items, model = List(), []
    for v in range(40):  # grows out of its slot, then from table to table
        items.append(v if v % 3 else str(v))
        model.append(v if v % 3 else str(v))
        assert len(items) == len(model)
        n = len(model)
        for i in (-n - 1, -n, -1, 0, n // 2, n - 1, n, 2**70, -(2**70), True):
            for index in (i, _Index(i)):
                try:
                    expected = model[index]  # type: ignore[index]
                except IndexError:
                    with pytest.raises(IndexError):
                        items[index]  # type: ignore[index]
                else:
                    assert items[index] == expected  # type: ignore[index]
                try:
                    model[index] = -v  # type: ignore[index]
                except IndexError:
                    with pytest.raises(IndexError):
                        items[index] = -v  # type: ignore[index]
                else:
                    items[index] = -v  # type: ignore[index]
                assert items == model
        assert items[1:n:2] == model[1:n:2]
    with pytest.raises(TypeError):
        items[1.0]  # type: ignore[index]
    with pytest.raises(TypeError):
        items[1.0] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        items.append()  # type: ignore[call-arg]
    assert items == model
    assert items.pop(0) == model.pop(0) and items.pop(-2) == model.pop(-2)
    while model:
        assert items.pop() == model.pop() and len(items) == len(model)
    with pytest.raises(IndexError):
        items.pop()
    with pytest.raises(TypeError):
        items.pop(1, 2)  # type: ignore[call-arg]


def test_no_user_code_runs_under_the_lock() -> None:
    items = List([3, 1, 2])
    held = []

    class Probe:
        def __eq__(self, other: object) -> bool:
            held.append(items.lock.locked())
            return other == 1

        def __reduce__(self) -> tuple[Any, ...]:
            held.append(items.lock.locked())
            return (int, (7,))

    def key(x: int) -> int:
        held.append(items.lock.locked())
        return -x

    items.sort(key=key)
    items.remove(Probe())
    items.append(Probe())
    items[0] = Probe()
    items.insert(0, Probe())
    assert items == [7, 7, 2, 7] and held and not any(held)
