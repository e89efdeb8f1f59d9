"""Value, RawValue and Counter in one process: every typecode, every atomic op against a model."""

from __future__ import annotations

import ctypes
import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import procshare
from procshare import Counter, RawValue, Value

INT_CODES = "bBhHiIlLqQ"
SIGNED = set("bhilq")
BITS = {c: 8 * ctypes.sizeof(getattr(ctypes, t)) for c, t in zip(
    INT_CODES, ["c_byte", "c_ubyte", "c_short", "c_ushort", "c_int", "c_uint", "c_long",
                "c_ulong", "c_longlong", "c_ulonglong"], strict=True)}  # fmt: skip


def wrap(code: str, x: int) -> int:
    bits = BITS[code]
    x %= 1 << bits
    return x - (1 << bits) if code in SIGNED and x >= 1 << (bits - 1) else x


def in_range(code: str) -> st.SearchStrategy[int]:
    bits = BITS[code]
    if code in SIGNED:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


def operand(code: str) -> st.SearchStrategy[int]:
    bits = BITS[code]
    return st.integers(-(1 << (bits - 1)), (1 << bits) - 1)


@st.composite
def int_case(draw: st.DrawFn) -> tuple[str, int, list[tuple[str, int, int]]]:
    code = draw(st.sampled_from(INT_CODES))
    ops = draw(st.lists(st.tuples(
        st.sampled_from(["fetch_add", "fetch_sub", "fetch_and", "fetch_or", "fetch_xor", "add",
                         "sub", "exchange", "compare_exchange", "iadd", "isub"]),
        operand(code), in_range(code)), max_size=20))  # fmt: skip
    return code, draw(in_range(code)), ops


@given(int_case())
def test_integer_atomics_match_model(case: tuple[str, int, list[tuple[str, int, int]]]) -> None:
    code, start, ops = case
    v = RawValue(code, start)
    model = start
    for op, n, r in ops:
        if op == "exchange":
            assert v.exchange(r) == model
            model = r
        elif op == "compare_exchange":
            expected = model if n % 2 else r
            assert v.compare_exchange(expected, r) == (expected == model)
            model = r if expected == model else model
        elif op in ("iadd", "isub"):
            v2 = v
            if op == "iadd":
                v2 += n
            else:
                v2 -= n
            assert v2 is v
            model = wrap(code, model + n if op == "iadd" else model - n)
        else:
            fn = {"fetch_add": lambda a, b: a + b, "fetch_sub": lambda a, b: a - b,
                  "fetch_and": lambda a, b: a & b, "fetch_or": lambda a, b: a | b,
                  "fetch_xor": lambda a, b: a ^ b, "add": lambda a, b: a + b,
                  "sub": lambda a, b: a - b}[op]  # fmt: skip
            new = wrap(code, fn(model, wrap(code, n)))
            got = getattr(v, op)(n)
            assert got == (new if op in ("add", "sub") else model)
            model = new
        assert v.value == model == v.load()


@pytest.mark.parametrize("code", INT_CODES)
def test_integer_limits_round_trip_and_overflow_is_refused(code: str) -> None:
    bits = BITS[code]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code in SIGNED else (0, (1 << bits) - 1)
    v = Value(code, lo)
    assert v.value == lo
    v.value = hi
    assert v.value == hi
    for bad in (lo - 1, hi + 1):
        with pytest.raises(OverflowError):
            v.value = bad
        with pytest.raises(OverflowError):
            Value(code, bad)
    assert v.value == hi  # unchanged
    assert v.add(1) == lo  # wraps as the C type does


@pytest.mark.parametrize("code", ["f", "d"])
def test_float_values(code: str) -> None:
    v = Value(code, 1.5)
    v += 0.25
    v -= 1
    assert v.value == 0.75
    assert v.fetch_add(0.25) == 0.75 and v.add(1) == 2.0
    assert v.compare_exchange(2, -0.5) and v.value == -0.5
    assert not v.compare_exchange(3.0, 1.0) and v.value == -0.5
    v.value = math.inf
    assert v.value == math.inf
    v.value = math.nan
    assert not v.compare_exchange(math.nan, 1.0)  # NaN equals nothing
    for op in ("fetch_and", "fetch_or", "fetch_xor"):
        with pytest.raises(TypeError, match="integer"):
            getattr(v, op)(1)
    with pytest.raises(TypeError):
        v.value = "1.0"


def test_float32_rounds_like_ctypes() -> None:
    v = Value("f", 0.1)
    assert v.value == ctypes.c_float(0.1).value


def test_char_wchar_bool_values() -> None:
    c = Value("c", b"x")
    assert c.value == b"x"
    c.value = 65
    assert c.value == b"A"
    assert c.exchange(b"z") == b"A" and c.compare_exchange(b"z", b"q") and c.value == b"q"
    with pytest.raises(TypeError):
        c.value = "x"
    with pytest.raises(TypeError):
        c.value = b"xy"
    with pytest.raises(TypeError):
        c += 1
    u = Value("u", "é")
    assert u.value == "é"
    u.value = "\U0001f600"
    assert u.value == "\U0001f600"
    with pytest.raises(TypeError):
        u.value = "ab"
    b = Value(ctypes.c_bool, True)
    assert b.value is True
    b.value = 0
    assert b.value is False
    with pytest.raises(TypeError):
        b.fetch_add(1)


@pytest.mark.parametrize("ctype", [ctypes.c_int, ctypes.c_double, ctypes.c_ubyte, ctypes.c_char,
                                   ctypes.c_wchar, ctypes.c_int64, ctypes.c_size_t])  # fmt: skip
def test_ctypes_types_are_accepted(ctype: type) -> None:
    v = Value(ctype)
    assert v.typecode == ctype._type_
    assert v.value == ctype().value


@pytest.mark.parametrize(
    ("args", "exc"),
    [(("z",), ValueError), (("ii",), ValueError), ((ctypes.c_void_p,), TypeError),
     ((ctypes.c_char_p,), TypeError), ((ctypes.c_longdouble,), TypeError), ((int,), TypeError),
     (("i", 1, 2), TypeError), (("i", 1.5), TypeError), (("i", "3"), TypeError)],
)  # fmt: skip
def test_bad_arguments_raise(args: tuple[object, ...], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Value(*args)


def test_bad_operands_change_nothing() -> None:
    v = Value("b", 5)
    for bad in (lambda: v.fetch_add(2**9), lambda: v.fetch_add(1.0), lambda: v.store(None),
                lambda: v.compare_exchange(5, 1000), lambda: v.add("1")):  # fmt: skip
        with pytest.raises((TypeError, OverflowError)):
            bad()
        assert v.value == 5
    with pytest.raises(TypeError):
        del v.value
    with pytest.raises(TypeError):
        v.fetch_add()


def test_value_lock_and_wrapper_api() -> None:
    v = Value("i", 3)
    lock = v.get_lock()
    assert isinstance(lock, procshare.RLock)
    with v, lock:  # recursive, as multiprocessing's
        v.value += 1
    assert v.acquire(timeout=1)
    v.release()
    raw = v.get_obj()
    assert type(raw) is RawValue and raw.value == 4
    raw += 1
    assert v.value == 5
    assert repr(v) == "Value('i', 5)"


def test_lock_false_gives_raw_value_and_shared_lock_is_shared() -> None:
    r = Value("d", 1.0, lock=False)
    assert type(r) is RawValue and not hasattr(r, "get_lock")
    shared = procshare.Lock()
    a, b = Value("i", lock=shared), Value("q", lock=shared)
    with a.get_lock():
        assert b.get_lock().locked()
    assert not b.get_lock().locked()
    with pytest.raises(TypeError, match="lock must be"):
        Value("i", lock="yes")


def test_counter() -> None:
    c = Counter()
    c += 5
    c -= 2
    assert c.value == 3 and int(c) == 3 and c.add(4) == 7 and c.sub(1) == 6
    assert c.reset() == 6 and c.value == 0
    c.value = 2**63 - 1
    c += 1
    assert c.value == -(2**63)  # wraps at 64 bits
    assert repr(Counter(42)) == "Counter(42)"
    assert range(10)[Counter(3)] == 3  # usable as an index
    with pytest.raises(TypeError):
        Counter("3")


def test_pickle_is_a_handle_not_a_copy() -> None:
    c = Counter(1)
    data = pickle.dumps(c)
    assert len(data) < 200
    c2 = pickle.loads(data)
    c2 += 10
    assert c.value == 11 and type(c2) is Counter
    v = Value("d", 2.5)
    v2 = pickle.loads(pickle.dumps(v))
    with v2.get_lock():
        assert v.get_lock().locked()
    v2.value = 7.0
    assert v.value == 7.0


def values_for(code: str) -> st.SearchStrategy[object]:
    if code in INT_CODES:
        return in_range(code)
    if code == "d":
        return st.floats(allow_nan=False)
    if code == "f":
        return st.floats(width=32, allow_nan=False)
    if code == "c":
        return st.binary(min_size=1, max_size=1)
    if code == "u":
        return st.characters(exclude_categories=("Cs",))
    return st.booleans()


@pytest.mark.parametrize("code", procshare._shm.typecodes.TYPECODES)
@given(data=st.data())
def test_every_typecode_round_trips(code: str, data: st.DataObject) -> None:
    items = data.draw(st.lists(values_for(code), min_size=1, max_size=5))
    v = RawValue(code, items[0])
    assert v.value == items[0] and v.load() == items[0]
    again = pickle.loads(pickle.dumps(v))
    assert again.value == items[0]
    arr = procshare.RawArray(code, items)
    expected = b"".join(items) if code == "c" else "".join(items) if code == "u" else items
    assert arr[:] == expected
    assert [arr[i] for i in range(len(items))] == items
