"""Contexts: multiprocessing's context API with one back end's shared objects.

``procshare.get_context(method)`` returns a Context whose Value, Array, the
locks, the queues (and procshare's Counter, Dict, List) are built by a back
end (shared memory unless another is given), whose Manager is procshare's,
and whose Process, Pool, Pipe and everything else come from multiprocessing's
context for that start method.  Shared objects travel between processes as handles whatever
the start method, so the two choices are independent.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from ._backends import OBJECTS, Backend
from ._backends.shm import SHM
from .managers import SyncManager, started_manager


class Context:
    """A multiprocessing context whose shared objects come from one back end."""

    def __init__(self, processes: Any, backend: Backend = SHM) -> None:
        self._processes = processes  # the multiprocessing context that starts processes
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in OBJECTS:
            return self.backend.constructors[name]
        return getattr(self._processes, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._processes)) | set(OBJECTS) | {"backend"})

    def Manager(self) -> SyncManager:
        """A started SyncManager whose server process this context starts."""
        return started_manager(self._processes)

    def get_context(self, method: str | None = None) -> Context:
        """The same back end with another start method."""
        return Context(multiprocessing.get_context(method), self.backend)

    def __repr__(self) -> str:
        method = self._processes.get_start_method()
        return f"<procshare context {self.backend.name} {method!r}>"


def default_backend() -> Backend:
    """Shared memory, or the Redis server PROCSHARE_URL names when it is set."""
    url = os.environ.get("PROCSHARE_URL")
    if not url:
        return SHM
    from ._backends.redis import backend_for_url

    return backend_for_url(url)


def get_context(method: str | None = None) -> Context:
    """multiprocessing.get_context(method), with the default back end's objects (shared
    memory unless PROCSHARE_URL names a Redis server)."""
    return Context(multiprocessing.get_context(method), default_backend())


def connect(url: str, *, pickle_password: bool = False, start_method: str | None = None) -> Context:
    """A context whose shared objects live on the Redis server url names
    (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, ``unix://``).
    Handles pickle without the password unless pickle_password; a child process finds it
    in its own connection to the same server, or in PROCSHARE_URL."""
    from ._backends.redis import connected

    return Context(multiprocessing.get_context(start_method), connected(url, pickle_password))
