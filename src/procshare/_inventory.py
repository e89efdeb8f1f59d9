"""The segments on this machine: listing them and removing leftovers (``procshare ls`` / ``rm``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import _core, _names
from ._errors import NotFoundError, ProcshareError
from ._generations import stale_table
from ._segment import Kind, Segment, start_time

SHM_DIR = "/dev/shm"

#: How long a segment may stay incomplete before it counts as damaged: creating one
#: takes microseconds, so a longer wait means its creator died while creating it.
_CREATING = 0.5


@dataclass
class Entry:
    name: str
    kind: str  # a Kind name, or "damaged: <reason>"
    size: int
    creator_pid: int
    creator_alive: bool

    @property
    def anonymous(self) -> bool:
        return _names.is_anonymous(self.name)


def _alive(pid: int, started: int) -> bool:
    return pid > 0 and _core.pid_alive(pid) and (started == 0 or start_time(pid) == started)


def entries() -> list[Entry]:
    """Every procshare segment in /dev/shm, with what its header says."""
    found = []
    for file in sorted(os.listdir(SHM_DIR)):
        if not file.startswith(_names.PREFIX):
            continue
        name = file[len(_names.PREFIX) :]
        try:
            size = os.stat(os.path.join(SHM_DIR, file)).st_size
            seg = Segment.attach(name, wait=_CREATING)
        except FileNotFoundError:
            continue  # removed meanwhile
        except (ProcshareError, OSError) as e:
            found.append(Entry(name, f"damaged: {e}", size, 0, False))
            continue
        pid, started = seg.creator()
        found.append(Entry(name, seg.kind.name.lower(), size, pid, _alive(pid, started)))
    return found


def remove(name: str) -> None:
    """Unlink the segment name; processes that map it keep their mapping."""
    try:
        _core.shm_unlink(_names.shm_path(name))
    except FileNotFoundError:
        raise NotFoundError(f"no procshare object named {name!r}") from None


def leftovers() -> list[Entry]:
    """Anonymous segments whose creator is gone, tables that are no longer their Dict's
    or List's current generation, and segments with damaged headers."""
    found = entries()
    names = {e.name for e in found}
    left = []
    for e in found:
        if e.kind in _TABLE_KINDS:
            if stale_table(e.name, names):
                left.append(e)
        elif e.kind.startswith("damaged") or (e.anonymous and not e.creator_alive):
            left.append(e)
    gone = {e.name for e in left}
    left += [e for e in found if e.name not in gone and e.name.rpartition(".g")[0] in gone]
    return left


_TABLE_KINDS = {Kind.DICT_TABLE.name.lower(), Kind.LIST_TABLE.name.lower()}


def main_ls() -> int:
    rows = entries()
    print(f"{'name':40} {'kind':10} {'bytes':>9} {'creator':>8}  state")
    for e in rows:
        state = "live" if e.creator_alive else "creator gone"
        print(f"{e.name:40} {e.kind:10.60} {e.size:>9} {e.creator_pid:>8}  {state}")
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
