"""Shared dict and list operations: procshare against Manager proxies and, when installed,
UltraDict and LMDB (on /dev/shm, writemap, no sync, one transaction per operation)."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from ..._data.dict import Dict
from ..._data.list import List
from ..table import RATIO, Table, speedup
from ._runner import Case, ctx

DICT_BASELINE = "mp Manager().dict()"
LIST_BASELINE = "mp Manager().list()"
LIST_PEERS = ("procshare List", LIST_BASELINE)

KEYS = [f"key{i}" for i in range(1000)]
SMALL = "value"
KIB = "v" * 1024


def _ops_per_s(op: Callable[[str], object], n: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        keys = (KEYS * (n // len(KEYS) + 1))[:n]
        t0 = time.perf_counter()
        for k in keys:
            op(k)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


@contextlib.contextmanager
def _peers(notes: list[str]) -> Iterator[dict[str, Any]]:
    """Each peer as {name: (get(k), set(k, v))}, opened and closed around the run."""
    peers: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        d = Dict()
        peers["procshare Dict"] = (d.__getitem__, d.__setitem__)
        manager = stack.enter_context(ctx.Manager())
        md = manager.dict()
        peers[DICT_BASELINE] = (md.__getitem__, md.__setitem__)
        try:
            from UltraDict import UltraDict  # type: ignore[import-not-found, import-untyped, unused-ignore]

            ud = UltraDict(buffer_size=1 << 22, full_dump_size=1 << 24)
            stack.callback(ud.unlink)
            peers["UltraDict"] = (ud.__getitem__, ud.__setitem__)
        except ImportError:
            notes.append("UltraDict is not installed (pip install 'procshare[bench]'): skipped")
        try:
            import lmdb  # type: ignore[import-not-found, import-untyped, unused-ignore]

            path = stack.enter_context(tempfile.TemporaryDirectory(dir="/dev/shm"))
            env = lmdb.open(path, map_size=1 << 30, writemap=True, sync=False, metasync=False)
            stack.callback(env.close)

            def lget(k: str) -> object:
                with env.begin() as txn:
                    return txn.get(k.encode())

            def lset(k: str, v: str) -> None:
                with env.begin(write=True) as txn:
                    txn.put(k.encode(), v.encode())

            peers["LMDB"] = (lget, lset)
        except ImportError:
            notes.append("lmdb is not installed (pip install 'procshare[bench]'): skipped")
        yield peers


def _list_cases(manager: Any, n: int, repeats: int) -> list[tuple[str, str, float]]:
    out = []
    for name, make in zip(LIST_PEERS, (List, manager.list), strict=True):
        items = make()
        count = n if name.startswith("procshare") else n // 20
        out.append((name, "append", _ops_per_s(items.append, count, repeats)))
        out.append((name, "[i]", _ops_per_s(partial(_seventh, items), count, repeats)))
    return out


def _seventh(items: Any, _: str) -> object:
    return items[7]


def _setter(put: Callable[[str, str], object], value: str) -> Callable[[str], object]:
    return lambda key: put(key, value)


def _incr_loop(d: Any, n: int) -> None:
    for _ in range(n):
        d.incr("hot")


def incr_case() -> Case:
    return Case("procshare Dict incr(hot key)", Dict, _incr_loop, lambda d: int(d.get("hot", 0)))


def run(n: int, repeats: int) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(case, operation, median ops/s) rows, and notes about skipped peers."""
    notes: list[str] = []
    rows = []
    with _peers(notes) as peers:
        for value_name, value in (("small str", SMALL), ("1 KiB str", KIB)):
            for name, (get, put) in peers.items():
                scale = 50 if name.startswith("mp") else 1
                for k in KEYS:
                    put(k, value)
                set_rate = _ops_per_s(_setter(put, value), n // scale, repeats)
                rows.append((name, f"set {value_name}", set_rate))
                rows.append((name, f"get {value_name}", _ops_per_s(get, n // scale, repeats)))
    with ctx.Manager() as manager:
        rows += _list_cases(manager, n, repeats)
    return rows, notes


def tables(rows: list[tuple[str, str, float]], notes: list[str], n: int) -> list[Table]:
    """Two tables, dict then list, each against its multiprocessing Manager proxy."""
    out = []
    for kind, baseline in (("dict", DICT_BASELINE), ("list", LIST_BASELINE)):
        t = Table(
            f"Shared {kind}: {n:,} operations (Manager proxies 1/50 of that)",
            ("implementation", "operation", "ops/s", RATIO),
            text=2,
            baseline=baseline,
        )
        for name, op, rate in rows:
            if (name in LIST_PEERS) == (kind == "list"):
                base = next((r for m, o, r in rows if o == op and m == baseline), None)
                t.add(name, op, f"{rate:,.0f}", speedup(rate, base))
        out.append(t)
    out[-1].notes = notes
    return out
