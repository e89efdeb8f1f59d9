"""Canonical bytes for dict keys, so that equal keys meet in every process.

Pickles are not canonical (``1``, ``1.0`` and ``True`` are equal keys with
different pickles; a frozenset of str pickles in an order that depends on the
process's hash seed), and ``hash()`` of str differs between processes.  Keys
of the common types are encoded canonically: None, bool, int, float and
complex (equal numbers encode alike), str, bytes, and tuples and frozensets
of these.  Any other hashable key is encoded by its pickle, so such keys meet
only when they pickle identically.
"""

from __future__ import annotations

import pickle
import struct

from .. import _core

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def canonical(key: object) -> bytes:
    """Bytes equal for equal keys of the supported types; TypeError if unhashable."""
    fast = _core.canonical_fast(key)  # exact str, bytes and int, in C
    return fast if fast is not None else canonical_general(key)


def canonical_general(key: object) -> bytes:
    """canonical() for every type (the C fast path must agree with this)."""
    if isinstance(key, str):
        return b"s" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return b"b" + key
    if isinstance(key, int):  # bool included: True == 1
        return b"i%d" % key
    if key is None:
        return b"n"
    if isinstance(key, float):
        if key.is_integer():
            return b"i%d" % int(key)
        return b"f" + struct.pack("<d", key)
    if isinstance(key, complex) and key.imag == 0:
        return canonical(key.real)
    if isinstance(key, tuple):
        return b"t" + b"".join(_framed(canonical(item)) for item in key)
    if isinstance(key, frozenset):
        return b"F" + b"".join(sorted(_framed(canonical(item)) for item in key))
    hash(key)  # unhashable keys raise TypeError, as with dict
    return b"p" + pickle.dumps(key, _PROTOCOL)


def _framed(part: bytes) -> bytes:
    return len(part).to_bytes(4, "little") + part


def stored(key: object) -> bytes:
    """What to store to give the key object back: empty when canonical() decodes exactly."""
    if type(key) in (str, bytes, int):
        return b""
    return pickle.dumps(key, _PROTOCOL)


def restore(canon: bytes, blob: bytes) -> object:
    """The key object from its canonical bytes and stored blob."""
    if blob:
        return pickle.loads(blob)
    kind, body = canon[:1], canon[1:]
    if kind == b"s":
        return body.decode("utf-8", "surrogatepass")
    if kind == b"b":
        return body
    return int(body)
