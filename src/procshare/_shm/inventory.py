"""The segments on this machine: what each is, which are leftovers, and removing them."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from functools import cache

from .. import _core
from .._errors import NotFoundError, ProcshareError, UntrustedSegmentError
from . import names as _names
from .arena import Slot, geometry
from .generations import stale_table
from .segment import DEFAULT_MODE, Segment, check_trust, owner_name, start_time

#: How long a segment may stay incomplete before it counts as damaged: creating one
#: takes microseconds, so a longer wait means its creator died while creating it.
_CREATING = 0.5


@dataclass
class Entry:
    name: str
    kind: str  # a Kind name, or "damaged: <reason>"
    size: int
    owner: str
    mode: int
    refused: bool  # attaching without mode= would refuse it: another owner, or open to others
    creator_pid: int
    creator_alive: bool

    @property
    def anonymous(self) -> bool:
        return _names.is_anonymous(_names.segment_of(_names.root_of(self.name)))


def alive(pid: int, started: int) -> bool:
    """Whether process pid runs and is the one that started at started (0: any)."""
    return pid > 0 and _core.pid_alive(pid) and (started == 0 or start_time(pid) == started)


def _refused(st: os.stat_result) -> bool:
    try:
        check_trust("", st, DEFAULT_MODE)
    except UntrustedSegmentError:
        return True
    return False


def entries() -> list[Entry]:
    """Every procshare segment in /dev/shm, with what its owner, mode and header say."""
    found = []
    for file in sorted(os.listdir(_names.SHM_DIR)):
        if file.startswith(_names.PREFIX) and (e := entry(file[len(_names.PREFIX) :])):
            found.append(e)
    return found


def entry(name: str) -> Entry | None:
    """The segment name as entries() describes it, or None if there is none."""
    try:
        st = os.stat(_names.file_path(_names.segment_of(name)))
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    row = (name, st.st_size, owner_name(st.st_uid), mode, _refused(st))
    try:
        # Reading a header runs nothing: look at every segment, trusted or not.
        seg = Segment.attach(name, wait=_CREATING, mode=0o666)
    except (FileNotFoundError, NotFoundError):
        return None  # removed meanwhile
    except (ProcshareError, OSError) as e:
        return Entry(row[0], f"damaged: {e}", *row[1:], 0, False)
    pid, started = seg.creator()
    if isinstance(seg, Slot):  # one object of an arena: its own slot's bytes
        row = (name, int(seg.arena.params["slot"]), *row[2:])
    kind = seg.kind.name.lower()
    if seg.kind == _names.Kind.ARENA:  # small objects, a slot each: say of which kind
        with contextlib.suppress(ProcshareError):
            kind = f"{geometry(seg).kind.name.lower()} arena"
    return Entry(row[0], kind, *row[1:], pid, alive(pid, started))


def remove(name: str) -> None:
    """Unlink the object name (a Dict's or List's tables too, once no process uses
    them); processes that map it keep their mapping."""
    try:
        seg = Segment.attach(name, wait=_CREATING, mode=0o666)
    except NotFoundError:
        raise
    except (ProcshareError, OSError):
        seg = None  # damaged: remove the name alone
    if seg is not None:
        seg.unlink()
        return
    try:
        _core.shm_unlink(_names.shm_path(name))
    except FileNotFoundError:
        raise NotFoundError(f"no procshare object named {name!r}") from None


@cache
def _mapped() -> set[str]:
    """Names of the procshare segments that some process maps now (from /proc/*/maps)."""
    marker = f"{_names.SHM_DIR}/{_names.PREFIX}"
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                if (at := line.find(marker)) >= 0:
                    names.add(line[at + len(marker) :].split(" ", 1)[0].rstrip("\n"))
    return names


def leftovers() -> list[Entry]:
    """Anonymous segments whose creator is gone, tables that are no longer in use (not
    their Dict's or List's current generation, or their root is gone and no process
    maps them), and segments with damaged headers.  Segments this user would refuse
    are never leftovers."""
    _mapped.cache_clear()
    left = []
    for e in entries():
        if e.refused:
            continue
        if e.kind in _TABLE_KIND_NAMES:
            if stale_table(e.name, _mapped):
                left.append(e)
        elif e.kind.startswith("damaged") or (e.anonymous and not e.creator_alive):
            left.append(e)
    return left


_TABLE_KIND_NAMES = {kind.name.lower() for kind in _names.TABLE_KINDS}
