"""``procshare top``: this user's objects, their live state and their rates, refreshed.

Each refresh reads every object the way ``procshare inspect`` does (never
taking a lock or waiting), and turns the counts a segment keeps anyway into
rates: a Counter's or Value's change per second, a queue's puts, a List's
writes.  In a terminal it is a curses view (keys: n name, k kind, s size,
r rate to sort; q to quit); otherwise, or with ``--once``, it prints one table.
"""

from __future__ import annotations

import curses
import fnmatch
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from .._shm.inventory import entries
from .._shm.names import TABLE_KINDS, Kind
from .._shm.segment import owner_name
from .inspect import describe, kind_of

#: The state field whose change per second is an object's rate.
RATE_FIELDS = {
    Kind.VALUE: "value", Kind.COUNTER: "value", Kind.LIST: "writes",
    Kind.QUEUE: "puts", Kind.SIMPLE_QUEUE: "puts", Kind.JOINABLE_QUEUE: "puts",
}  # fmt: skip
_WRAPS = {"puts": 1 << 32}  # counters kept modulo this

SORTS = {"n": "name", "k": "kind", "s": "size", "r": "rate"}
KEYS = "n name  k kind  s size  r rate  q quit"


@dataclass
class Row:
    name: str
    kind: str
    size: int
    state: dict[str, Any]
    rate: float | None


class Sampler:
    """Reads this user's objects; remembers last counts to give rates."""

    def __init__(self, pattern: str = "*") -> None:
        self.owner, self.pattern = owner_name(os.getuid()), pattern
        self.last: dict[str, tuple[float, Any]] = {}

    def sample(self) -> list[Row]:
        rows, now, seen = [], time.monotonic(), {}
        for e in entries():
            if e.owner != self.owner or e.refused or e.kind.startswith("damaged"):
                continue
            if not fnmatch.fnmatchcase(e.name, self.pattern):
                continue
            kind = kind_of(e)
            if kind in TABLE_KINDS:
                continue
            state = describe(e, 0).get("state")
            if not isinstance(state, dict):
                continue  # gone, or not readable
            field = RATE_FIELDS.get(kind)
            count = state.get(field) if field else None
            rate = None
            if isinstance(count, int | float) and e.name in self.last:
                then, before = self.last[e.name]
                delta = count - before
                if field in _WRAPS:
                    delta %= _WRAPS[field]
                if now > then and delta >= 0:
                    rate = delta / (now - then)
            if count is not None:
                seen[e.name] = (now, count)
            rows.append(Row(e.name, e.kind, e.size, state, rate))
        self.last = seen
        return rows


def summary(state: dict[str, Any]) -> str:
    """The state in one line (previews left out)."""
    parts = []
    for key, value in state.items():
        if key == "preview":
            continue
        if isinstance(value, dict):
            value = " ".join(f"{k}={v}" for k, v in value.items())
            parts.append(f"{key}[{value}]")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def ordered(rows: list[Row], sort: str) -> list[Row]:
    if sort == "rate":
        return sorted(rows, key=lambda r: (r.rate is None, -(r.rate or 0), r.name))
    if sort == "size":
        return sorted(rows, key=lambda r: (-r.size, r.name))
    return sorted(rows, key=lambda r: (getattr(r, sort), r.name))


def table(rows: list[Row], width: int) -> list[str]:
    lines = [f"{'name':32} {'kind':15} {'bytes':>9} {'rate/s':>11}  state"]
    for r in rows:
        rate = "-" if r.rate is None else f"{r.rate:,.0f}"
        line = f"{r.name[:32]:32} {r.kind:15} {r.size:>9} {rate:>11}  {summary(r.state)}"
        lines.append(line[:width])
    return lines


def _view(screen: Any, interval: float, sort: str, pattern: str) -> None:
    curses.curs_set(0)
    screen.timeout(int(interval * 1000))
    sampler = Sampler(pattern)
    while True:
        rows = ordered(sampler.sample(), sort)
        height, width = screen.getmaxyx()
        screen.erase()
        head = f"procshare top: {len(rows)} objects, sorted by {sort}  ({KEYS})"
        for y, line in enumerate([head[: width - 1], *table(rows, width - 1)][: height - 1]):
            screen.addstr(y, 0, line)
        screen.refresh()
        key = screen.getch()
        if key in (ord("q"), ord("Q")):
            return
        if 0 <= key < 256 and chr(key) in SORTS:
            sort = SORTS[chr(key)]


def main(once: bool, interval: float, sort: str, pattern: str = "*") -> int:
    if once or not sys.stdout.isatty():
        rows = ordered(Sampler(pattern).sample(), sort)
        print("\n".join(table(rows, 1_000)))
        print(f"{len(rows)} object(s)")
        return 0
    curses.wrapper(_view, interval, sort, pattern)
    return 0
