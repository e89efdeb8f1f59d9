"""Futures for answers: one reply queue per asking process, answers matched by id."""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from .._data.queue import Queue
from .._errors import ProcshareError, raise_remote
from ._messages import ASK, CALL, STOP, route

#: How often a waiting asker checks that the actor it waits for is alive (seconds).
LIVENESS_SLICE = 0.02


class ActorDeadError(ProcshareError, RuntimeError):
    """The actor is not running: it stopped, or its process died."""


class Replies:
    """This process's reply queue, and the answers that arrived for other waiters.

    One thread at a time reads the queue; an answer it reads for another
    thread waits in ``arrived`` until that thread looks (dict operations are
    atomic, so looking needs no lock)."""

    def __init__(self) -> None:
        self.queue = Queue(shards=1)  # few messages: one buffer, whoever answers
        self.routes = {kind: route(kind, self.queue) for kind in (ASK, CALL, STOP)}
        self.ids = itertools.count(1)
        self.arrived: dict[int, tuple[bool, Any, str]] = {}
        self.reading = threading.Lock()

    def take(self, id: int, timeout: float) -> tuple[bool, Any, str] | None:
        """The answer for id if it arrives within timeout, else None."""
        answer = self.arrived.pop(id, None)
        if answer is not None or not self.reading.acquire(timeout=timeout):
            return answer
        try:
            answer = self.arrived.pop(id, None)  # it may have come while this thread waited
            if answer is not None:
                return answer
            try:
                answers = self.queue.get_many(256, timeout=timeout)
            except queue.Empty:
                return None
        finally:
            self.reading.release()
        for got, ok, value, text in answers:
            if got == id:
                answer = (ok, value, text)
            else:
                self.arrived[got] = (ok, value, text)
        return answer


_replies: Replies | None = None
_replies_lock = threading.Lock()


def replies() -> Replies:
    """This process's Replies, made on first use (and again after a fork)."""
    global _replies
    r = _replies
    if r is not None:
        return r
    with _replies_lock:
        if _replies is None:
            _replies = Replies()
        return _replies


def _forked() -> None:
    global _replies
    _replies = None  # the parent's reply queue is not this process's


os.register_at_fork(after_in_child=_forked)


class Future:
    """An answer on its way: ``get(timeout=None)``, or ``await`` it (Pykka's Future)."""

    def __init__(self, replies: Replies, id: int, alive: Callable[[], str | None]) -> None:
        self._replies, self._id, self._alive = replies, id, alive
        self._answer: tuple[bool, Any, str] | None = None

    def get(self, timeout: float | None = None) -> Any:
        """The answer, or the exception the handler raised; TimeoutError after timeout;
        ActorDeadError when the actor died before answering."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._answer is None:
            left = LIVENESS_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout} s")
            self._answer = self._replies.take(self._id, min(left, LIVENESS_SLICE))
            if self._answer is None and (why := self._alive()) is not None:
                self._answer = self._replies.take(self._id, 0)  # it may have answered, then died
                if self._answer is None:
                    raise ActorDeadError(why)
        ok, value, text = self._answer
        if not ok:
            raise_remote(value, text)
        return value

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.get_running_loop().run_in_executor(None, self.get).__await__()
