"""``procshare ls`` and ``procshare rm``: the inventory of segments, printed."""

from __future__ import annotations

from .._errors import NotFoundError
from .._shm.inventory import entries, leftovers, remove


def main_ls() -> int:
    rows = entries()
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
    targets = names + ([e.name for e in leftovers()] if dead else [])
    status = 0
    for name in targets:
        try:
            remove(name)
            print(f"removed {name}")
        except NotFoundError as e:
            print(f"procshare rm: {e}")
            status = 1
    return status
