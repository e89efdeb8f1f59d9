"""Exceptions raised by procshare; each also derives from the builtin a caller would expect."""


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
