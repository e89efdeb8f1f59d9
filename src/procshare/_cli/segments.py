"""``procshare ls`` and ``procshare rm``: the inventory of segments, printed."""

from __future__ import annotations

import dataclasses
import json

from .._errors import NotFoundError
from .._shm import names as _names
from .._shm.inventory import entries, leftovers, remove


def main_ls(as_json: bool = False) -> int:
    rows = entries()
    if as_json:
        print(json.dumps([dataclasses.asdict(e) for e in rows], indent=2))
        return 0
    print(f"{'name':40} {'kind':10} {'bytes':>9} {'owner':16} {'mode':>5} {'creator':>8}  state")
    for e in rows:
        state = "live" if e.creator_alive else "creator gone"
        if e.refused:
            state += ", refused (not this user's alone)"
        print(f"{e.name:40} {e.kind:10.60} {e.size:>9} {e.owner:16} {e.mode:>#5o} "
              f"{e.creator_pid:>8}  {state}")  # fmt: skip
    print(f"{len(rows)} segment(s)")
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
