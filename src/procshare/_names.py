"""Segment names: validation of user names, fresh anonymous names, the common prefix."""

import os
import re
import secrets

#: Every segment procshare creates is /dev/shm/<PREFIX><name>.
PREFIX = "procshare."

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


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


def shm_path(name: str) -> str:
    """The POSIX shared-memory name of the segment holding name."""
    return "/" + PREFIX + name
