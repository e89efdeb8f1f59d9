"""Dict: dict's behaviour (a state machine against dict), equal keys across processes,
exact concurrent updates, readers beside writers, growth, SIGKILL, nested objects."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from procshare import Counter, Dict, KindError, List, Lock
from procshare._shm import inventory as _inventory
from procshare._shm import names as _names
from procshare._shm.codec import decode_value, encode_value
from procshare._shm.keys import canonical

import workers
from conftest import kill_while_running, run_all

keys = st.one_of(st.integers(-5, 20), st.text(max_size=3), st.tuples(st.integers(0, 3)),
                 st.sampled_from([1.0, True, False, None, b"k", 2.5]))  # fmt: skip
values = st.one_of(st.integers(), st.text(max_size=5), st.binary(max_size=5), st.none(),
                   st.lists(st.integers(), max_size=3))  # fmt: skip


class DictMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.shared: Dict = Dict()
        self.model: dict[Any, Any] = {}

    @rule(k=keys, v=values)
    def set(self, k: Any, v: Any) -> None:
        self.shared[k] = v
        self.model[k] = v

    @rule(k=keys)
    def delete(self, k: Any) -> None:
        if k in self.model:
            del self.shared[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.shared[k]

    @rule(k=keys, v=values)
    def setdefault(self, k: Any, v: Any) -> None:
        assert self.shared.setdefault(k, v) == self.model.setdefault(k, v)

    @rule(k=keys)
    def pop(self, k: Any) -> None:
        assert self.shared.pop(k, "none") == self.model.pop(k, "none")

    @rule()
    def popitem(self) -> None:
        if self.model:
            assert self.shared.popitem() == self.model.popitem()
        else:
            with pytest.raises(KeyError):
                self.shared.popitem()

    @rule(k=keys, n=st.integers(-3, 3))
    def incr(self, k: Any, n: int) -> None:
        if isinstance(self.model.get(k, 0), int):
            self.model[k] = self.model.get(k, 0) + n
            assert self.shared.incr(k, n) == self.model[k]

    @rule(items=st.dictionaries(keys, values, max_size=4))
    def update(self, items: dict[Any, Any]) -> None:
        self.shared.update(items)
        self.model.update(items)

    @rule()
    def clear(self) -> None:
        self.shared.clear()
        self.model.clear()

    @invariant()
    def same(self) -> None:
        assert len(self.shared) == len(self.model)
        assert list(self.shared.items()) == list(self.model.items())  # insertion order too
        assert self.shared == self.model and self.shared.copy() == self.model


TestDictMachine = DictMachine.TestCase
TestDictMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_dict_protocol_details() -> None:
    d = Dict([("a", 1)], b=2)
    assert d == {"a": 1, "b": 2} and d != {"a": 1} and d != [("a", 1)]
    assert Dict.fromkeys("xy", 0) == {"x": 0, "y": 0}
    assert d | {"c": 3} == {"a": 1, "b": 2, "c": 3} and {"z": 0} | d == {"z": 0, "a": 1, "b": 2}
    d |= {"c": 3}
    assert set(d.keys()) == {"a", "b", "c"} and sorted(d.values()) == [1, 2, 3]
    assert ("a", 1) in d.items() and "a" in d.keys() and 2 in d.values()  # noqa: SIM118
    assert type(d.copy()) is dict and repr(d) == str(d) == "{'a': 1, 'b': 2, 'c': 3}"
    assert list(reversed(d)) == ["c", "b", "a"] and dict(d) == {"a": 1, "b": 2, "c": 3}
    assert d.keys() & {"a", "z"} == {"a"}
    d["self"] = d  # stored by reference: repr does not recurse forever
    assert repr(d).endswith("'self': {...}}")
    assert d.compare_and_set("a", 1, 10) and not d.compare_and_set("a", 1, 11) and d["a"] == 10
    assert not d.compare_and_set("missing", None, 1)
    with d.lock:
        d["b"] += 1
    assert d["b"] == 3
    with pytest.raises(TypeError):
        hash(d)


def test_tuple_keys_and_keyword_arguments_of_the_one_call_methods() -> None:
    d = Dict({0: "int", (0,): "tuple"})
    with pytest.raises(KeyError) as missing:
        d[(1, 2)]
    assert missing.value.args == ((1, 2),)  # the key itself, as dict says it
    del d[(0,)]
    assert d == {0: "int"} and (0,) not in d and d.get((0,), "gone") == "gone"
    assert d.incr(key="k", n=2, default=5) == 7 and d.incr("k", default=0) == 8
    assert d.compare_and_set(key="k", expected=8, new=9) and d["k"] == 9
    for bad in (lambda: d.incr(), lambda: d.incr("k", 1, 0, 0), lambda: d.incr("k", m=1),
                lambda: d.compare_and_set("k", 9), lambda: d.get()):  # fmt: skip
        with pytest.raises(TypeError):
            bad()
    assert d == {0: "int", "k": 9}  # bad calls changed nothing


def test_equal_keys_meet() -> None:
    d = Dict()
    d[1] = "int"
    assert d[1.0] == "int" and d[True] == "int" and d[complex(1, 0)] == "int"
    d[0.0] = "zero"
    assert d[-0.0] == "zero" and d[False] == "zero"
    d[(1, "a")] = "t"
    assert d[(1.0, "a")] == "t"
    d[frozenset({"x", "y"})] = "fs"
    assert d[frozenset({"y", "x"})] == "fs"
    first = next(iter(d))
    assert first == 1 and type(first) is int  # the first key object is kept


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_keys_meet_across_processes_with_other_hash_seeds(method: str) -> None:
    d = Dict()
    run_all(mp.get_context(method), workers.dict_keys_from_spawn, [(d,)])
    assert d[frozenset({"gamma", "alpha", "beta"})] == "fs"
    assert d[("t", 1, None)] == "tuple" and d["h\u00e9"] == "text"


def test_bad_input_changes_nothing(name: str) -> None:
    d = Dict({"keep": 1}, name=name)
    with pytest.raises(TypeError):
        d[[1, 2]] = 1
    with pytest.raises(TypeError):
        d[{}]
    with pytest.raises(Exception, match="pickle"):
        d["bad"] = threading.Lock()
    with pytest.raises(Exception, match="pickle"):
        d.update({"x": 1, "bad": threading.Lock()})
    assert d.copy() == {"keep": 1}
    with pytest.raises(KeyError):
        d["missing"]
    with pytest.raises(KindError):
        Lock(name=name)
    d.unlink()


def test_attach_by_name_and_pickle(name: str) -> None:
    d = Dict({"x": 1}, name=name)
    same = Dict({"ignored": 0}, name=name)
    same["y"] = 2
    assert d.copy() == {"x": 1, "y": 2}
    twin = pickle.loads(pickle.dumps(d))
    twin["z"] = 3
    assert d["z"] == 3 and len(pickle.dumps(d)) < 200
    d.unlink()


class Sub(Dict):
    def double(self, key: str) -> int:
        return int(self[key]) * 2


def test_subclass() -> None:
    s = Sub(a=4)
    assert s.double("a") == 8 and type(pickle.loads(pickle.dumps(s))) is Sub


@pytest.mark.parametrize("cls", [Dict, List])
def test_the_constructor_is_the_cores_and_inspect_still_reads_its_signature(cls: Any) -> None:
    """Dict() and List() are made by the core in one call; every other call goes through
    the class's _new, with the same checks; inspect shows the signature, or a subclass's
    own constructor's."""
    import inspect

    made = [cls() for _ in range(300)]  # past the slots backed at first: the pool grows
    assert all(type(x) is cls and len(x) == 0 for x in made)
    assert len({x.name for x in made}) == 300
    assert list(inspect.signature(cls).parameters)[1:3] == ["name", "mode"]
    with pytest.raises(TypeError, match="mode"):
        cls(mode=384.0)
    with pytest.raises(TypeError):
        cls(1)

    class Own(cls):  # type: ignore[misc, valid-type]
        def __new__(klass, *args: Any, **kwargs: Any) -> Any:
            return super().__new__(klass, *args, **kwargs)

    class Tagged(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)

    assert list(inspect.signature(Tagged).parameters) == ["args"]
    assert type(Own()) is Own and type(Tagged()) is Tagged and len(Own()) == len(Tagged()) == 0


def test_growth_keeps_everything() -> None:
    d = Dict()
    for i in range(5000):
        d[i] = str(i) * (i % 7)
    for i in range(0, 5000, 2):
        del d[i]
    assert len(d) == 2500 and all(d[i] == str(i) * (i % 7) for i in range(1, 5000, 2))
    assert list(d) == list(range(1, 5000, 2))


@pytest.mark.parametrize("kept", [1, 3, 50])
def test_rebuilds_keep_insertion_order_however_sparse_the_survivors(kept: int) -> None:
    """A rebuild orders the live entries by when they were inserted, whether few of many
    survive (their insertion numbers far apart) or most do; a rewritten key keeps its
    place."""
    d, model = Dict(), {}
    for i in range(3000):
        d[i] = model[i] = i
        if i % kept:
            del d[i], model[i]
    d[0] = model[0] = "rewritten"
    for i in range(3000, 6000):  # grows it again, with every survivor copied
        d[f"k{i}"] = model[f"k{i}"] = i
    assert list(d.items()) == list(model.items())


def test_hot_key_increments_are_exact(ctx: Any) -> None:
    d = Dict()
    run_all(ctx, workers.dict_incr, [(d, "hot", 500)] * 4)
    assert d["hot"] == 2000


def test_in_place_increments_stay_exact_while_the_table_is_replaced(ctx: Any) -> None:
    """incr and compare_and_set on ints update the entry in place without a lock; a
    writer that copies the table to grow it freezes each int first, so none is lost."""
    d = Dict(hot=0, cas=0)
    jobs = [(workers.dict_incr, (d, "hot", 3000)), (workers.dict_cas_incr, (d, "cas", 1500))]
    procs = [ctx.Process(target=f, args=a) for f, a in jobs * 2]
    procs.append(ctx.Process(target=workers.dict_grow_and_clear, args=(d, 3000)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert d._generation() > 1  # it did grow meanwhile
    assert d["hot"] == 6000 and d["cas"] == 3000


def test_adds_landing_on_frozen_ints_are_never_seen_nor_counted() -> None:
    """incr adds to an int's word without looking first; one that lands on a word a lock
    holder froze takes the general path, and its add stays in that word's bits, which
    no one reads (readers take the value frozen with it) and the lock holder's next
    store overwrites (a thaw stores the frozen value back whole).  Writers here freeze
    and thaw the key over and over while others add to it and a reader watches."""
    d, bad = Dict(hot=0), Counter()
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    reader = ctx.Process(target=workers.dict_read_rising, args=(d, "hot", stop, bad))
    reader.start()
    try:
        run_all(ctx, workers.dict_incr, [(d, "hot", 20_000)] * 2, timeout=120)
    finally:
        stop.set()
    reader.join(30)
    assert reader.exitcode == 0 and bad.value == 0
    assert d["hot"] == 40_000
    jobs = [
        (workers.dict_incr, (d, "hot", 20_000)),
        (workers.dict_incr_compared, (d, "hot", 3_000)),
    ]
    procs = [ctx.Process(target=f, args=a) for f, a in jobs * 2]
    stop.clear()
    reader = ctx.Process(target=workers.dict_read_rising, args=(d, "hot", stop, bad))
    for p in [*procs, reader]:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    reader.join(30)
    assert reader.exitcode == 0 and bad.value == 0
    assert d["hot"] == 40_000 + 46_000


def test_ints_beyond_the_in_place_range_are_stored_frozen() -> None:
    """An int word holds values within 2**61 in place; a larger int is stored frozen
    (its shadow holds it) and updated under the lock, crossing both ways exactly."""
    safe = 2**61
    d = Dict(k=safe - 2)
    assert d.incr("k") == safe - 1 and d.incr("k", 3) == safe + 2 and d["k"] == safe + 2
    assert d._table.incr("k", 1, None) is None  # beyond the range: the lock decides
    assert d.incr("k", -4) == safe - 2 and d._table.incr("k", 1, None) == safe - 1
    assert d.compare_and_set("k", safe - 1, -safe - 5) and d["k"] == -safe - 5
    assert d.get("k") == -safe - 5 and d.copy() == {"k": -safe - 5}
    assert d.incr("k", 10) == -safe + 5 and d._table.incr("k", -1, None) == -safe + 4
    d["k"] = safe + 7  # an int over an int, out of range: stored frozen in place
    assert d["k"] == safe + 7 and d.incr("k", 2**40) == safe + 7 + 2**40
    d["k"] = 0
    assert d.incr("k", 2**40) == 2**40 and d.incr("k", -(2**40)) == 0  # past XADD_MAX
    for i in range(200):  # grown: the copies keep each value, in range or not
        d[i] = safe + i if i % 2 else i
    assert all(d[i] == (safe + i if i % 2 else i) for i in range(200)) and d["k"] == 0


def test_ints_past_63_bits_and_back() -> None:
    big = [2**62 - 1, 2**62, -(2**62), -(2**62) - 1, 2**63 - 1, -(2**63), 2**64, -(2**100)]
    d, items = Dict(), List(big)
    for i, v in enumerate(big):
        d[i] = v
    assert [d[i] for i in range(len(big))] == big and list(items) == big
    d["k"] = 2**62 - 2
    assert d.incr("k") == 2**62 - 1 and d.incr("k") == 2**62 and d.incr("k") == 2**62 + 1
    assert d.incr("k", -3) == 2**62 - 2 and d.incr("k") == 2**62 - 1  # back in place
    assert d.compare_and_set("k", 2**62 - 1, 2**70) and d["k"] == 2**70
    assert d.compare_and_set("k", 2**70, 5) and d.incr("k") == 6


def test_a_frozen_int_left_by_a_dead_writer_still_reads_and_updates() -> None:
    """A writer killed between freezing an int entry and replacing it leaves it frozen:
    readers take the value it was frozen with, updates take the lock and store over it."""
    d = Dict(k=41)
    with d.lock:
        d._writable().freeze(canonical("k"))  # as the dead writer left it
    assert d._table.incr("k", 5, None) is None  # frozen: its add lands in no value
    assert d["k"] == 41 and d.get("k") == 41 and d.copy() == {"k": 41}
    run_all(mp.get_context("fork"), workers.dict_expect, [(d, "k", 41)])
    assert d.incr("k") == 42 and d._table.incr("k", 1, None) == 43  # stored over, thawed
    with d.lock:
        d._writable().freeze(canonical("k"))
    assert d.compare_and_set("k", 43, 50) and d["k"] == 50
    assert not d.compare_and_set("k", 43, 60) and d.pop("k") == 50 and "k" not in d


def test_distinct_key_increments_are_exact(ctx: Any) -> None:
    d = Dict()
    run_all(ctx, workers.dict_incr, [(d, f"k{i}", 300) for i in range(4)])
    assert d.copy() == {f"k{i}": 300 for i in range(4)}


def test_readers_never_see_torn_or_foreign_values_while_writers_grow_it() -> None:
    ctx = mp.get_context("fork")
    d, bad, stop = Dict(), Counter(), ctx.Event()
    readers = [ctx.Process(target=workers.dict_check_reads, args=(d, p, 3000, bad, stop))
               for p in ("a", "b")]  # fmt: skip
    for r in readers:
        r.start()
    try:
        run_all(ctx, workers.dict_fill, [(d, "a", 3000), (d, "b", 3000)], timeout=120)
    finally:
        stop.set()
        for r in readers:
            r.join(30)
    assert all(r.exitcode == 0 for r in readers)
    assert bad.value == 0 and len(d) == 6000 and d._gen > 1


def test_killed_writer_leaves_a_consistent_dict() -> None:
    for _ in range(3):
        d = Dict()
        kill_while_running(workers.dict_write_forever, (d,), (0.02, 0.3))
        d["after"] = "ok"  # the next writer takes the lock over and repairs
        items = d.copy()
        assert len(d) == len(items) and items["after"] == "ok"
        for (_, i), value in ((k, v) for k, v in items.items() if k != "after"):
            assert value[:2] == ("w", i)


def test_nested_objects_are_shared_by_reference(ctx: Any) -> None:
    d = Dict()
    d["counter"] = Counter(1)
    d["inner"] = Dict()
    run_all(ctx, workers.dict_nested_append, [(d,)])
    assert d["counter"].value == 8 and d["inner"]["child"] == "was here"


def test_writer_killed_while_growing_leaves_no_damage() -> None:
    for _ in range(4):
        d = Dict()
        kill_while_running(workers.dict_grow_forever, (d,), (0.05, 0.4))
        items = d.copy()  # every key the victim published, none torn, none missing
        n = len(items)
        assert items == {i: "x" * (i % 50) for i in range(n)}
        for i in range(n, n + 3000):  # forces further growth past whatever was left half-done
            d[i] = "x" * (i % 50)
        assert len(d) == n + 3000 and d[n + 2999] == "x" * ((n + 2999) % 50)
        stale = [e.name for e in _inventory.leftovers() if e.name.startswith(d.name + "~")]
        current = d._table_seg.name
        assert current == _names.table(d.name, d._token, d._gen)
        assert current not in stale
        for name in stale:
            _inventory.remove(name)
        assert d[n] == "x" * (n % 50)  # still readable after removing the stale tables


keys = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
              st.binary()),
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=4)),
    max_leaves=8,
)  # fmt: skip


@given(keys, keys)
def test_keys_meet_exactly_when_equal(a: Any, b: Any) -> None:
    """The canonical encoding (one implementation, in C) is equal exactly for equal keys."""
    assert (canonical(a) == canonical(b)) == (a == b)


@given(st.one_of(st.integers(), st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1])))
def test_an_int_key_is_its_decimal_digits(n: int) -> None:
    """Ints of 64 bits take the fast path, larger ones the general one: both write the
    digits as str() does, so an int key reads back as itself in every process."""
    assert canonical(n) == b"i" + str(n).encode()


@given(st.integers(-(2**53), 2**53))  # floats hold these exactly
def test_equal_numbers_of_every_type_meet(n: int) -> None:
    assert canonical(n) == canonical(float(n)) == canonical(complex(n)) == canonical((n, 0)[0])
    assert canonical(frozenset({n, "a", b"b"})) == canonical(frozenset({b"b", "a", float(n)}))


@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats(allow_nan=False),
                 st.lists(st.integers()), st.none()))  # fmt: skip
def test_values_round_trip(value: Any) -> None:
    assert decode_value(*encode_value(value)) == value
    assert type(decode_value(*encode_value(value))) is type(value)


def test_one_call_removal_gives_what_dict_gives() -> None:
    """del d[k] and pop are one C call on the current table, and go to Python on another
    generation (or before a new Dict has its lock): both raise and return as dict does."""
    d, model = Dict(), {}
    for n in range(60):  # from the slot through generations of table segments
        for key in (n, str(n), (n, "t"), b"b%d" % n, float(n) + 0.5):
            d[key] = model[key] = [n]
        key = (n, "t")
        assert d.pop(key) == model.pop(key)
        assert d.pop(key, "dflt") == model.pop(key, "dflt") == "dflt"
        for gone in (key, ("never", n)):
            with pytest.raises(KeyError) as raised:
                d.pop(gone)
            assert raised.value.args == (gone,)
        del d[str(n)], model[str(n)]
        with pytest.raises(KeyError) as raised:
            del d[key]
        assert raised.value.args == (key,)
        assert len(d) == len(model) and dict(d.items()) == model
    with pytest.raises(TypeError):
        d.pop([1])  # unhashable, as dict says
    with pytest.raises(TypeError):
        d.pop()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        del d[[1]]  # type: ignore[index]


def test_creation_with_contents_is_atomic(name: str) -> None:
    # Whoever attaches while another process creates sees all the initial contents or
    # waits: never an empty or half-filled Dict.
    ctx = mp.get_context("fork")
    p = ctx.Process(target=workers.dict_create_named, args=(name, 20_000))
    p.start()
    try:
        path = f"/dev/shm/procshare.{name}"
        end = time.monotonic() + 30
        while not os.path.exists(path):
            assert time.monotonic() < end
        d = Dict._attach(name)
        assert len(d) == 20_000 and d[19_999] == 19_999**2
    finally:
        p.join(30)
    Dict._attach(name).unlink()


class Watched:
    """A value, key or number whose pickling, comparison and arithmetic record whether the
    Dict's cross-process lock was held at that moment."""

    seen: list[bool] = []  # noqa: RUF012 - shared by design
    lock: Any = None

    def __init__(self, n: int = 0) -> None:
        self.n = n

    def _note(self) -> None:
        Watched.seen.append(Watched.lock.locked())

    def __reduce__(self) -> tuple[Any, ...]:
        self._note()
        return (Watched, (self.n,))

    def __eq__(self, other: object) -> bool:
        self._note()
        return isinstance(other, Watched) and other.n == self.n

    def __hash__(self) -> int:
        self._note()
        return hash(self.n)

    def __add__(self, other: int) -> Watched:
        self._note()
        return Watched(self.n + other)


def test_no_user_code_runs_under_the_lock() -> None:
    d = Dict()
    Watched.lock, Watched.seen = d.lock, []
    d["v"] = Watched(1)
    d[Watched(2)] = 1
    d.setdefault("s", Watched(3))
    d.update({"u": Watched(4)})
    d["n"] = Watched(5)
    assert d.incr("n", 2) == Watched(7)
    assert d.compare_and_set("v", Watched(1), Watched(8))
    assert not d.compare_and_set("v", Watched(1), Watched(9))
    assert d["v"] == Watched(8) and d.pop(Watched(2)) == 1
    assert Watched.seen and not any(Watched.seen)


def test_init_again_updates_and_fromkeys_builds_through_cls() -> None:
    d = Dict(a=1)
    d.__init__({"b": 2}, c=3)  # type: ignore[misc]
    assert d == {"a": 1, "b": 2, "c": 3}

    class Tagged(Dict):
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            self = super().__new__(cls, *args, **kwargs)
            self["tag"] = "made by __new__"
            return self

    t = Tagged.fromkeys("xy", 0)
    assert type(t) is Tagged and t == {"tag": "made by __new__", "x": 0, "y": 0}


def test_the_general_path_leaves_other_processes_on_the_word() -> None:
    """incr under the lock (a first call, or a process whose word was retired) adds to
    a stored int in place without freezing it: freezing would send every process that
    increments the key at that moment to the lock, each freezing it again in turn (on
    16 cores, 4 or more processes on one key stayed there)."""
    d, slow = Dict(hits=0), Counter()
    assert d["hits"] == 0  # a new Dict binds its table at its first use: here, not in a child
    ctx = mp.get_context("fork")
    run_all(ctx, workers.dict_incr_as, [(d, "hits", "general", 20_000, slow),
                                        (d, "hits", "fast", 200_000, slow)])  # fmt: skip
    assert d["hits"] == 220_000 and slow.value == 0


def test_incr_follows_a_key_that_another_process_replaced() -> None:
    """A process that incremented a key goes straight to that key's word next time, for
    updates and reads; a word another process retired (deleted, replaced by another
    type) is never updated, nor read as the key's value."""
    d = Dict()
    d["hits"] = 0
    assert d.incr("hits") == 1 and d.compare_and_set("hits", 1, 2) and d["hits"] == 2
    ctx = mp.get_context("fork")
    run_all(ctx, workers.dict_incr, [(d, "hits", 10)])
    assert d["hits"] == 12 and d.incr("hits") == 13  # its last sight of the word is stale
    run_all(ctx, workers.dict_readd, [(d, "hits", 100)])
    assert d["hits"] == 100 and d.incr("hits") == 101 and d["hits"] == 101
    run_all(ctx, workers.dict_set, [(d, "hits", 5)])  # an int over an int
    assert d.get("hits") == 5 and d.incr("hits") == 6
    run_all(ctx, workers.dict_set, [(d, "hits", "text")])
    assert d["hits"] == "text"
    with pytest.raises(TypeError):
        d.incr("hits")
    run_all(ctx, workers.dict_readd, [(d, "hits", 40)])
    assert not d.compare_and_set("hits", 6, 0) and d.compare_and_set("hits", 40, 41)
    assert d["hits"] == 41
    run_all(ctx, workers.dict_pop, [(d, "hits")])
    assert "hits" not in d and d.get("hits") is None
