"""Canonical bytes for dict keys, so that equal keys meet in every process.

Pickles are not canonical (``1``, ``1.0`` and ``True`` are equal keys with
different pickles; a frozenset of str pickles in an order that depends on the
process's hash seed), and ``hash()`` of str differs between processes.  Keys
of the common types are encoded canonically: None, bool, int, float and
complex (equal numbers encode alike), str, bytes, and tuples and frozensets
of these.  Any other hashable key is encoded by its pickle, so such keys meet
only when they pickle identically.  The encoding is written once, in C
(procshare._native/codec.c); this module adds how a key object is given back.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from .. import _core

#: Bytes equal for equal keys of the supported types; TypeError if unhashable (in C).
canonical: Callable[[object], bytes] = _core.canonical


def restore(canon: bytes, blob: bytes) -> object:
    """The key object from its canonical bytes and the blob encode_item stored with it
    (the key's pickle, or empty when the canonical bytes give an exact str, bytes or int)."""
    if blob:
        return pickle.loads(blob)
    kind, body = canon[:1], canon[1:]
    if kind == b"s":
        return body.decode("utf-8", "surrogatepass")
    if kind == b"b":
        return body
    return int(body)
