"""Exceptions raised by procshare; each also derives from the builtin a caller would expect."""

import errno
from typing import NoReturn


class ProcshareError(Exception):
    """Base class of procshare's own errors."""


class NotFoundError(ProcshareError, FileNotFoundError):
    """No shared object exists under the name."""


class KindError(ProcshareError, TypeError):
    """The name holds another kind of object, or the same kind with another layout."""


class VersionError(ProcshareError):
    """The segment was written by an incompatible layout version of procshare."""


class CorruptSegmentError(ProcshareError):
    """The segment's header is damaged or was never completed."""


class UntrustedSegmentError(ProcshareError, PermissionError):
    """The segment belongs to another user, or grants access beyond what the caller accepts.

    Whoever may write a segment chooses what its readers unpickle, so procshare
    attaches only segments owned by the effective uid and closed to group and
    others, unless the caller passed a ``mode=`` that shares them.
    """


class SpaceError(ProcshareError, OSError):
    """The shared-memory file system cannot hold a new or grown segment."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)


class StoreUnavailableError(ProcshareError, ConnectionError):
    """The store behind a context (a Redis server) could not be reached, or did not answer
    within the timeout.  The call may or may not have taken effect; the next call
    reconnects."""


class LockLostError(ProcshareError, RuntimeError):
    """A lease lock's lease may have lapsed while it was held: another holder may have
    taken it.  Whatever it protected must be treated as no longer protected."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process (a manager's server, an
    actor), attached as the cause of the same exception raised in the caller."""

    def __str__(self) -> str:
        return "\n\n" + str(self.args[0])


def raise_remote(exc: BaseException, text: str) -> NoReturn:
    """Raise exc in this process with text, its traceback where it was raised, as its cause."""
    exc.__cause__ = RemoteTraceback(text)
    raise exc
