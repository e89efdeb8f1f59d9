"""Segment identity: names (user, anonymous, table), kinds, and the class of each kind.

User names use the alphabet ``A-Z a-z 0-9 . _ -`` and start with a letter or
digit.  Every name procshare makes for itself lies outside that set, so it
can never meet a user's: anonymous names start with ``_``, and a Dict's or
List's tables are ``<root>~<token>.<generation>``.  Every segment's header
records its Kind; each public type registers itself as the class of its
kind, which is how ``procshare ls``/``rm`` and cleanup find what a kind needs.
"""

from __future__ import annotations

import enum
import os
import re
import secrets
from typing import Any

from .. import _core

#: Every segment procshare creates is /dev/shm/<PREFIX><name>.
PREFIX = "procshare."

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TABLE = re.compile(r"(.+)~([0-9a-f]{16})\.([0-9]+)")
_ANONYMOUS = re.compile(r"_[0-9]+_[0-9a-f]{16}")


class Kind(enum.IntEnum):
    """What a segment holds."""

    VALUE = 1
    ARRAY = 2
    COUNTER = 3
    LOCK = 4
    RLOCK = 5
    SEMAPHORE = 6
    BOUNDED_SEMAPHORE = 7
    CONDITION = 8
    EVENT = 9
    BARRIER = 10
    QUEUE = 11
    SIMPLE_QUEUE = 12
    JOINABLE_QUEUE = 13
    DICT = 14
    DICT_TABLE = 15
    LIST = 16
    LIST_TABLE = 17
    ARENA = 18  # many small anonymous objects, a slot each (arena.py)


#: Kinds of the segments that hold a Dict's or List's data, not an object of their own.
TABLE_KINDS = frozenset({Kind.DICT_TABLE, Kind.LIST_TABLE})

_classes: dict[int, Any] = {}  # by Kind, found by its number too


def register(kind: Kind, cls: Any) -> None:
    """Record cls as the class of kind (the first class to define the kind)."""
    _classes.setdefault(kind, cls)


def class_of(kind: int) -> Any:
    """The class registered for kind (a Kind or its number), or None (a table, or a type
    not imported)."""
    return _classes.get(kind)


def validate(name: object) -> str:
    """Return name if it is a valid user name, else raise TypeError or ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not _USER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid name {name!r}: use 1 to 200 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


def anonymous() -> str:
    """A fresh name for an object created without one (never a valid user name)."""
    return f"_{os.getpid()}_{secrets.token_hex(8)}"


def is_anonymous(name: str) -> bool:
    """Whether name is one that anonymous() makes."""
    return _ANONYMOUS.fullmatch(name) is not None


def creator_pid(name: str) -> int | None:
    """The pid of the process that made the anonymous object name (a segment, a slot of
    an arena or a table of either), or None for a user's name."""
    root = segment_of(root_of(name))
    return int(root[1:].split("_", 1)[0]) if is_anonymous(root) else None


#: A fresh, unpredictable token naming one object's table generations, as a number (the
#: core draws them from the system's CSPRNG a batch at a time; a forked child, its own).
token_number = _core.token_number


def token() -> str:
    """A fresh token naming one object's table generations, as its names write it."""
    return token_text(token_number())


def token_text(number: int) -> str:
    """A token as table names write it."""
    return format(number, "016x")


def table(root: str, token: str, generation: int) -> str:
    """The name of generation of the tables of root (whose token is token)."""
    return f"{root}~{token}.{generation}"


def parse_table(name: str) -> tuple[str, str, int] | None:
    """(root, token, generation) if name is a table's name, else None."""
    m = _TABLE.fullmatch(name)
    return None if m is None else (m[1], m[2], int(m[3]))


def root_of(name: str) -> str:
    """The object a segment name belongs to: the root of a table, else the name itself."""
    table = parse_table(name)
    return name if table is None else table[0]


def segment_of(name: str) -> str:
    """The segment that holds the object name: an arena slot's (``<arena>@<slot>.<gen>``)
    is its arena, any other name (a table too, even one of a slot's) is its own."""
    return name if "~" in name else name.split("@", 1)[0]  # "~": only tables have one


def nameable(name: str) -> bool:
    """Whether name can name a segment or a slot in one: a user name, an anonymous one, a
    table of either, or ``<arena>@<slot>.<generation>``."""
    root = root_of(segment_of(name))
    return _USER_NAME.fullmatch(root) is not None or is_anonymous(root)


def shm_path(name: str) -> str:
    """The POSIX shared-memory name of the segment holding name."""
    return "/" + PREFIX + name


#: Where the system keeps POSIX shared memory as files.
SHM_DIR = "/dev/shm"


def file_path(name: str) -> str:
    """The file of the segment name (a segment's own name, not a slot's)."""
    return SHM_DIR + shm_path(name)
