"""procshare on Redis beside redis-py issuing the same commands: what the API costs.

One client on loopback, fixed-time loops, medians of repeats.  The server is
PROCSHARE_URL's when set, else a redis-server this section starts on a free
port (no persistence) and stops.  Each row pairs a procshare operation with
the redis-py calls a careful user would make for it, with the same guarantee
(a message taken at least once sits on a processing list until acknowledged);
procshare's get also renews its consumer lease and looks for dead consumers
in the same Lua call.  One more row prices the guarantee: a batch popped
at most once (LPOP), which a consumer killed mid-batch loses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..table import RATIO, Table, speedup
from .managers import _rate

BATCH = 100
SLICES = 10  # alternations of procshare's loop and redis-py's within one repeat
#: A batch taken at least once, as a redis-py user would script it: acknowledge the
#: previous batch, then move up to ARGV[1] messages onto the processing list and return them.
_RAW_TAKE = """
redis.call('DEL', KEYS[2])
local got = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #got > 0 then
  redis.call('LTRIM', KEYS[1], #got, -1)
  redis.call('RPUSH', KEYS[2], unpack(got))
end
return got
"""


@contextlib.contextmanager
def _server(notes: list[str]) -> Iterator[str | None]:
    url = os.environ.get("PROCSHARE_URL")
    if url:
        yield url
        return
    exe = shutil.which("redis-server")
    if exe is None:
        notes.append("no Redis: set PROCSHARE_URL, or install redis-server")
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def _pairs(url: str) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """(operation, procshare's, redis-py's) for one server."""
    import redis

    from ..._context import connect

    ctx, raw = connect(url), redis.Redis.from_url(url)
    counter, value, d = ctx.Counter(), ctx.Value("q", 7), ctx.Dict(key="value")
    q, lock = ctx.Queue(), ctx.Lock()
    raw_lock = raw.lock("procshare-bench-raw-lock", timeout=30)
    hkey, field = d.part("h"), b"skey"
    raw_q, raw_p = "procshare-bench-raw-q", "procshare-bench-raw-p"
    batch = [b"\x02" + b"m" * 100] * BATCH
    raw_take = raw.register_script(_RAW_TAKE)
    messages = [b"m" * 100] * BATCH

    def ps_put_get() -> None:
        q.put(b"m" * 100)
        q.get()

    def raw_put_get() -> None:
        raw.rpush(raw_q, b"\x00" + b"m" * 100)
        raw.lmove(raw_q, raw_p, "LEFT", "RIGHT")
        raw.ltrim(raw_p, 1, -1)

    def ps_batch() -> None:
        q.put_many(messages)
        q.get_many(BATCH)

    def raw_batch() -> None:
        raw.rpush(raw_q, *batch)
        raw_take(keys=[raw_q, raw_p], args=[BATCH])

    def raw_batch_once() -> None:
        raw.rpush(raw_q, *batch)
        raw.lpop(raw_q, BATCH)

    def ps_lock() -> None:
        lock.acquire()
        lock.release()

    def raw_lock_pair() -> None:
        raw_lock.acquire()
        raw_lock.release()

    return [
        ("Counter add(1) | HINCRBY", lambda: counter.add(1),
         lambda: raw.hincrby(counter.key, "v", 1)),
        ("Value .value | HGET", lambda: value.value, lambda: int(raw.hget(value.key, "v") or 0)),
        ("Dict d['key'] = 'value' | HSET", lambda: d.__setitem__("key", "value"),
         lambda: raw.hset(hkey, field, b"\x02value")),
        ("Dict d['key'] | HGET", lambda: d["key"], lambda: raw.hget(hkey, field)),
        ("Queue put + get | RPUSH, LMOVE, LTRIM", ps_put_get, raw_put_get),
        (f"put_many + get_many of {BATCH} | RPUSH, Lua move", ps_batch, raw_batch),
        ("the same | RPUSH, LPOP: at most once", ps_batch, raw_batch_once),
        ("Lock acquire + release | redis-py Lock", ps_lock, raw_lock_pair),
    ]  # fmt: skip


def _paired(
    mine: Callable[[], object], theirs: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """Both sides' ops/s over about seconds each, taken in alternating slices so that the
    server's and the machine's drift (large on loopback) falls on both alike, and
    each side leads in turn."""
    rates: tuple[list[float], list[float]] = ([], [])
    for i in range(SLICES):
        for side in (0, 1) if i % 2 else (1, 0):  # neither side always goes first
            rates[side].append(_rate((mine, theirs)[side], seconds / SLICES))
    return statistics.fmean(rates[0]), statistics.fmean(rates[1])


def run(seconds: float, repeats: int) -> tuple[list[tuple[str, float, float]], list[str]]:
    """(operation, procshare ops/s, redis-py ops/s) medians, and notes."""
    notes: list[str] = []
    with _server(notes) as url:
        if url is None:
            return [], notes
        pairs = _pairs(url)
        rates: dict[int, list[tuple[float, float]]] = {}
        for _ in range(repeats):
            for i, (_, mine, theirs) in enumerate(pairs):
                rates.setdefault(i, []).append(_paired(mine, theirs, seconds))
        rows = [(op, statistics.median(r[0] for r in rates[i]),
                 statistics.median(r[1] for r in rates[i]))
                for i, (op, _, _) in enumerate(pairs)]  # fmt: skip
    return rows, notes


def table(rows: list[tuple[str, float, float]], notes: list[str], seconds: float) -> Table:
    """Each operation through procshare and as the same redis-py calls."""
    title = f"Redis: procshare beside the same redis-py calls, one client, {seconds:g} s loops"
    out = Table(title, ("operation | redis-py's calls", "procshare ops/s", "redis-py ops/s", RATIO),
                baseline="redis-py", notes=notes)  # fmt: skip
    for op, ps, raw in rows:
        out.add(op, f"{ps:,.0f}", f"{raw:,.0f}", speedup(ps, raw))
    return out


def plotted(rows: Any) -> list[tuple[str, str, float]]:
    """The figures as the plot draws them."""
    return [row for op, ps, raw in rows[0]
            for row in (("procshare", op, ps), ("redis-py", op, raw))]  # fmt: skip
