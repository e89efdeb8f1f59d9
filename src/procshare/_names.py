"""Segment names: user names, fresh anonymous names, table names, the common prefix.

User names use the alphabet ``A-Z a-z 0-9 . _ -`` and start with a letter or
digit.  Every name procshare makes for itself lies outside that set, so it
can never meet a user's: anonymous names start with ``_``, and a Dict's or
List's tables are ``<root>~<token>.<generation>``.
"""

import os
import re
import secrets

#: Every segment procshare creates is /dev/shm/<PREFIX><name>.
PREFIX = "procshare."

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TABLE = re.compile(r"(.+)~([0-9a-f]{16})\.([0-9]+)")


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
    return name.startswith("_")


def token() -> str:
    """A fresh token naming one object's table generations."""
    return secrets.token_hex(8)


def table(root: str, token: str, generation: int) -> str:
    """The name of generation of the tables of root (whose token is token)."""
    return f"{root}~{token}.{generation}"


def parse_table(name: str) -> tuple[str, str, int] | None:
    """(root, token, generation) if name is a table's name, else None."""
    m = _TABLE.fullmatch(name)
    return None if m is None else (m[1], m[2], int(m[3]))


def shm_path(name: str) -> str:
    """The POSIX shared-memory name of the segment holding name."""
    return "/" + PREFIX + name
