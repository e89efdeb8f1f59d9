"""How Queue, Dict and List store a value: as (tag, bytes).

Exact bytes, str and 64-bit ints are stored as they are, procshare's own
objects whose handle is their kind, name and mode as that handle (see
shared._recorded), anything else pickled.  Encoding and decoding are implemented once, in C
(procshare._native/codec.c), and used both here and by the native one-call
paths of Queue, Dict and List.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _core

#: (tag, bytes) for a value; the pickling error for one that cannot be stored.
encode_value: Callable[[object], tuple[int, bytes]] = _core.encode_value

#: The value stored as (tag, bytes).
decode_value: Callable[[int, bytes], Any] = _core.decode_value

#: Everything a Dict stores for key and value, encoded in one call: (canonical key, the
#: key's pickle or b"" when the canonical bytes give it back, value tag, value bytes).
encode_item: Callable[[object, object], tuple[bytes, bytes, int, bytes]] = _core.encode_item
