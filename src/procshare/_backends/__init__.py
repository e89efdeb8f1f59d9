"""Back ends: where a context's shared objects live.

A back end is a table of constructors, one for each name in OBJECTS, that
build objects keeping the contract in ``tests/test_contract.py`` (exact
atomic steps, lock ownership, queue order, dict and list behaviour, bad
input).  A Context pairs one back end with one of multiprocessing's start
methods.  Shared memory is the default and the top-level names are its types;
another store joins by writing one package here with its table and one
fixture param in the contract suite.  The seam costs nothing per operation:
a constructor returns the back end's own object, whose methods are called
directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The constructors every back end provides.
OBJECTS = (
    "Array", "Barrier", "BoundedSemaphore", "Condition", "Counter", "Dict", "Event",
    "JoinableQueue", "List", "Lock", "Namespace", "Queue", "RLock", "RawArray", "RawValue",
    "Semaphore", "SimpleQueue", "Value",
)  # fmt: skip


@dataclass(frozen=True)
class Backend:
    """A named store and its constructors (exactly the names in OBJECTS)."""

    name: str
    constructors: Mapping[str, Callable[..., Any]]

    def __post_init__(self) -> None:
        if set(self.constructors) != set(OBJECTS):
            raise TypeError(f"back end {self.name!r} must provide exactly {', '.join(OBJECTS)}")
