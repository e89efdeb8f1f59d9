"""Actor: state owned by one process, changed only by the messages it receives.

``MyActor.start(*args, name=None, **kwargs)`` runs ``MyActor(*args, **kwargs)``
in a new process and returns its ActorRef.  The process takes messages from
its mailbox (a procshare Queue) in order and hands each to ``on_receive``;
an ask's answer goes straight back to the asker's reply queue.  The starting
process supervises: when the actor's process dies, a restart policy may start
a fresh one on the same mailbox.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from .._data.dict import Dict
from .._data.queue import Queue
from .._errors import NotFoundError
from .._shm.names import is_anonymous
from .._shm.segment import start_time
from ._messages import CALL, STOP, parse, reply_queue
from ._ref import ActorRef

log = logging.getLogger("procshare.actors")


@dataclass(frozen=True)
class Restart:
    """One-for-one restart policy: restart a dead actor with fresh state, waiting
    ``backoff`` seconds (doubled after each restart, up to ``max_backoff``), at most
    ``max_restarts`` times within ``within`` seconds."""

    max_restarts: int = 3
    within: float = 60.0
    backoff: float = 0.1
    max_backoff: float = 5.0


class Actor:
    """Subclass it and handle messages in ``on_receive``; hooks as Pykka names them."""

    actor_ref: ActorRef

    def on_start(self) -> None:
        """Called in the actor's process before the first message."""

    def on_stop(self) -> None:
        """Called in the actor's process when it stops on request."""

    def on_failure(self, exc_type: Any, exc_value: BaseException, tb: Any) -> None:
        """Called when handling a told message raised (an ask's asker gets the exception)."""

    def on_receive(self, message: Any) -> Any:
        """Handle one message; what it returns is the answer to an ask."""
        return None

    @classmethod
    def start(
        cls,
        *args: Any,
        name: str | None = None,
        mailbox_size: int = 0,
        restart: Restart | None = None,
        ctx: Any = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Run ``cls(*args, **kwargs)`` in a new process; its mailbox holds at most
        mailbox_size messages (0: no limit); restart= restarts it if its process dies."""
        ctx = ctx or multiprocessing.get_context()
        if name is not None:
            _claim(name)
        # One shard: messages are handled in the order they reached the mailbox, whoever
        # sent them (a total told from several processes, then asked for, is complete).
        mailbox = Queue(mailbox_size, name=None if name is None else f"{name}.mailbox", shards=1)
        record = Dict(name=name)
        record.update({"mailbox": mailbox, "state": "starting", "pid": 0, "started": 0,
                       "class": cls.__qualname__, "restarts": 0})  # fmt: skip
        ref = ActorRef(record)
        process = _launch(ctx, cls, args, kwargs, ref)
        threading.Thread(
            target=_supervise, args=(ctx, cls, args, kwargs, ref, process, restart),
            daemon=True, name=f"procshare-supervise-{cls.__qualname__}",
        ).start()  # fmt: skip
        return ref


def _claim(name: str) -> None:
    """Make name free for a new actor: ValueError if an actor by that name runs; the
    record and mailbox of one that died without stopping are removed."""
    try:
        old = ActorRef.lookup(name)
    except NotFoundError:
        return
    if old.is_alive():
        raise ValueError(f"an actor named {name!r} is running ({old.actor_class})")
    old._mailbox.unlink()
    old._record.unlink()


def _launch(ctx: Any, cls: type[Actor], args: Any, kwargs: Any, ref: ActorRef) -> Any:
    process = ctx.Process(target=_run, args=(cls, args, kwargs, ref),
                          name=f"actor-{cls.__qualname__}", daemon=True)  # fmt: skip
    process.start()
    return process


def _supervise(
    ctx: Any, cls: type[Actor], args: Any, kwargs: Any, ref: ActorRef, process: Any,
    policy: Restart | None,
) -> None:  # fmt: skip
    """Wait for the actor's process; restart it when it died and the policy allows."""
    record, backoff = ref._record, policy.backoff if policy else 0.0
    restarts: list[float] = []
    while True:
        process.join()
        if record.get("state") == "stopped" or policy is None:
            break
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < policy.within]
        if len(restarts) >= policy.max_restarts:
            log.error("actor %s (%s) died %d times within %g s: not restarted",
                      cls.__qualname__, ref.name, len(restarts), policy.within)  # fmt: skip
            break
        log.warning("actor %s (%s) died (exit code %s): restarting",
                    cls.__qualname__, ref.name, process.exitcode)  # fmt: skip
        time.sleep(backoff)
        backoff = min(2 * backoff, policy.max_backoff)
        restarts.append(now)
        record["state"] = "starting"
        record.incr("restarts")
        process = _launch(ctx, cls, args, kwargs, ref)
    if record.get("state") != "stopped":
        record["state"] = "stopped"


def _run(cls: type[Actor], args: Any, kwargs: Any, ref: ActorRef) -> None:
    """The actor's process: build the actor, then handle messages until a Stop."""
    record, mailbox = ref._record, ref._mailbox
    actor = cls(*args, **kwargs)
    actor.actor_ref = ref
    actor.on_start()
    record.update(pid=os.getpid(), started=start_time(os.getpid()))
    record["state"] = "running"
    while True:
        for message in mailbox.get_many(256):
            request = parse(message)
            if request is None:
                try:
                    actor.on_receive(message)
                except Exception as e:
                    log.error("actor %s failed on a told message", cls.__qualname__, exc_info=e)
                    actor.on_failure(type(e), e, e.__traceback__)
                continue
            kind, payload, r, id = request
            if kind == STOP:
                _stop(actor, record, r, id)
                return
            _answer(actor, kind, payload, r, id)


def _answer(actor: Actor, kind: bytes, payload: Any, r: bytes, id: int) -> None:
    try:
        if kind == CALL:
            attr, args, kwargs = payload
            value = getattr(actor, attr)
            result = value if args is None else value(*args, **kwargs)
        else:
            result = actor.on_receive(payload)
        answer: tuple[Any, ...] = (id, True, result, "")
    except Exception as e:
        answer = (id, False, e, "".join(traceback.format_exception(e)))
    replies = reply_queue(r)
    try:
        replies.put(answer)
    except Exception as e:  # the answer does not pickle: say so instead
        replies.put((id, False, TypeError(f"the answer cannot be sent: {e}"), ""))


def _stop(actor: Actor, record: Dict, r: bytes, id: int) -> None:
    record["state"] = "stopped"
    try:
        actor.on_stop()
    finally:
        if not is_anonymous(record.name):  # a named actor's names go with it
            record["mailbox"].unlink()
            record.unlink()
        reply_queue(r).put((id, True, None, ""))
