"""What travels through an actor's mailbox besides the user's own messages.

A told message travels as it is (an int, str or bytes without pickling).  A
message that wants an answer travels as ``(payload, route, id)``: route is a
marker, the kind of request and the asker's reply queue pickled, so the
actor needs no lookup to answer, and the three are a plain tuple, the
cheapest thing to pickle.  A user's own 3-tuple is never taken for one: its
second item would have to be bytes starting with the marker.
"""

from __future__ import annotations

import pickle
from typing import Any

MARKER = b"\x00procshare.actors.route\x00"
ASK, CALL, STOP = b"a", b"c", b"s"  # on_receive(payload); a method or attribute; stop


def route(kind: bytes, replies: Any) -> bytes:
    """The route of requests of kind answered into the queue replies."""
    return MARKER + kind + pickle.dumps(replies)


def parse(message: Any) -> tuple[bytes, Any, bytes, int] | None:
    """(kind, payload, route, id) when message is a request, else None (a told message)."""
    if type(message) is tuple and len(message) == 3:
        payload, r, id = message
        if type(r) is bytes and r.startswith(MARKER):
            return r[len(MARKER) : len(MARKER) + 1], payload, r, id
    return None


#: Reply queues an actor has attached, by route (most recent last).
_reply_queues: dict[bytes, Any] = {}
_KEEP = 256


def reply_queue(r: bytes) -> Any:
    """The reply queue a route names, attached once per asking process."""
    q = _reply_queues.pop(r, None)
    if q is None:
        q = pickle.loads(r[len(MARKER) + 1 :])
        if len(_reply_queues) >= _KEEP:
            del _reply_queues[next(iter(_reply_queues))]
    _reply_queues[r] = q
    return q
