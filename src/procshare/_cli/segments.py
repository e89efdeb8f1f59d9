"""``procshare ls`` and ``procshare rm``: the inventory of segments, printed."""

from __future__ import annotations

import dataclasses
import json

from .._errors import NotFoundError
from .._shm import names as _names
from .._shm.inventory import entries, leftovers, remove
from .table import Table, show


def main_ls(as_json: bool = False) -> int:
    rows = entries()
    if as_json:
        print(json.dumps([dataclasses.asdict(e) for e in rows], indent=2))
        return 0
    table = Table(
        f"{len(rows)} segment(s)",
        ("name", "kind", "owner", "state", "bytes", "mode", "creator"),
        text=4,
    )
    for e in rows:
        state = "live" if e.creator_alive else "creator gone"
        if e.refused:
            state += ", refused (not this user's alone)"
        table.add(e.name, e.kind, e.owner, state, e.size, f"{e.mode:#o}", e.creator_pid)
    show(table)
    return 0


def main_rm(names: list[str], dead: bool) -> int:
    status = 0
    for name in names:
        if not _names.nameable(name):
            try:
                _names.validate(name)  # says why: the same message a constructor gives
            except (TypeError, ValueError) as e:
                print(f"procshare rm: {e}")
            status = 1
    dead_ones = [e.name for e in leftovers()] if dead else []
    if dead and not dead_ones:
        print("procshare rm --dead: nothing to remove (no leftovers of dead processes)")
    for name in [n for n in names if _names.nameable(n)] + dead_ones:
        try:
            remove(name)
            print(f"removed {name}")
        except NotFoundError as e:
            print(f"procshare rm: {e}")
            status = 1
    return status
