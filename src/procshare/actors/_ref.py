"""ActorRef: the handle on an actor, in any process; its proxy; the errors they raise."""

from __future__ import annotations

import contextlib
import os
import queue
import time
from typing import Any

from .._data.dict import Dict
from .._shm.inventory import alive
from ._futures import ActorDeadError, Future, replies
from ._messages import ASK, CALL, STOP

#: How long stop() waits for a stopped actor's process to end (seconds).
PROCESS_EXIT = 10.0


class ActorRef:
    """A handle on a running actor: ``tell``, ``ask``, ``proxy``, ``stop``.

    It pickles as the actor's record (a shared Dict holding its mailbox and the
    pid of its process), so it passes to any process; ``ActorRef.lookup(name)``
    finds a named actor from an unrelated one.
    """

    __slots__ = ("_mailbox", "_record", "actor_class")

    def __init__(self, record: Dict) -> None:
        self._record = record
        self._mailbox = record["mailbox"]
        self.actor_class: str = record["class"]

    @classmethod
    def lookup(cls, name: str) -> ActorRef:
        """The actor started with this name (NotFoundError if there is none)."""
        return cls(Dict._attach(name))

    @property
    def name(self) -> str:
        return self._record.name

    def _stopped(self) -> str | None:
        """Why the actor will take no more messages (it stopped for good), else None."""
        if self._record.get("state") == "stopped":
            return f"actor {self.actor_class} ({self.name}) has stopped"
        return None

    def _why_dead(self) -> str | None:
        """None while the actor runs, else why it does not (reads its process's state)."""
        if (why := self._stopped()) is not None:
            return why
        state, pid, started = (self._record.get(k) for k in ("state", "pid", "started"))
        if state == "running" and not alive(pid, started):
            return f"the process of actor {self.actor_class} ({self.name}, pid {pid}) has died"
        return None

    def is_alive(self) -> bool:
        """Whether the actor is running (or starting, or being restarted)."""
        return self._why_dead() is None

    def _send(self, message: Any, block: bool, timeout: float | None) -> None:
        if (why := self._stopped()) is not None:
            raise ActorDeadError(why)
        try:
            self._mailbox.put(message, block, timeout)
        except queue.Full:
            raise queue.Full(f"the mailbox of {self.actor_class} ({self.name}) is full") from None

    def tell(self, message: Any, block: bool = True, timeout: float | None = None) -> None:
        """Send message without waiting for it to be handled.  A bounded mailbox that is
        full blocks (up to timeout) or, with block=False, raises queue.Full at once."""
        self._send(message, block, timeout)

    def ask(self, message: Any, block: bool = True, timeout: float | None = None) -> Any:
        """Send message and return on_receive's answer (block=False: a Future of it)."""
        future = self._request(ASK, message, timeout)
        return future.get(timeout) if block else future

    def _request(self, kind: bytes, payload: Any, timeout: float | None = None) -> Future:
        r = replies()
        id = next(r.ids)
        incarnation = self._record.get("restarts")
        self._send((payload, r.routes[kind], id), True, timeout)

        def why_unanswered() -> str | None:
            if self._record.get("restarts") != incarnation:
                return f"actor {self.actor_class} ({self.name}) died and was restarted"
            return self._why_dead()

        return Future(r, id, why_unanswered)

    def proxy(self) -> ActorProxy:
        """Method calls and attribute reads on the actor, each returning a Future."""
        return ActorProxy(self)

    def stop(self, block: bool = True, timeout: float | None = None) -> bool:
        """Stop the actor after the messages already in its mailbox; True once it stopped
        and its process has ended (False if it was not running)."""
        pid, started = self._record.get("pid"), self._record.get("started")
        try:
            future = self._request(STOP, None, timeout)
        except ActorDeadError:
            return False
        if not block or pid == os.getpid():  # from the actor itself: it stops after this message
            return True
        with contextlib.suppress(ActorDeadError):  # it stopped or died first: stopped anyway
            future.get(timeout)
        deadline = time.monotonic() + (PROCESS_EXIT if timeout is None else timeout)
        while alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.001)  # it answered, and is letting go of its handles as it exits
        return True

    def __eq__(self, other: object) -> bool:  # the same actor: the same record segment
        return isinstance(other, ActorRef) and self._record._identity() == other._record._identity()

    def __hash__(self) -> int:
        return hash(self._record._identity())

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorRef, (self._record,))

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "dead"
        return f"<ActorRef of {self.actor_class} ({self.name}), {state}>"


class ActorProxy:
    """``proxy.method(*args)`` and ``proxy.attribute``: Futures of the actor's answers."""

    __slots__ = ("_ref",)

    def __init__(self, ref: ActorRef) -> None:
        self._ref = ref

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return _Member(self._ref, attr)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorProxy, (self._ref,))


class _Member:
    """A proxy's attribute: call it for a method call, or .get() / await it for a read."""

    __slots__ = ("_attr", "_read", "_ref")

    def __init__(self, ref: ActorRef, attr: str) -> None:
        self._ref, self._attr = ref, attr
        self._read: Future | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Future:
        return self._ref._request(CALL, (self._attr, args, kwargs))

    def _future(self) -> Future:
        if self._read is None:
            self._read = self._ref._request(CALL, (self._attr, None, None))
        return self._read

    def get(self, timeout: float | None = None) -> Any:
        return self._future().get(timeout)

    def __await__(self) -> Any:
        return self._future().__await__()
