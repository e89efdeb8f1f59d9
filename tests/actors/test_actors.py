"""Actors in real processes: messages, answers, proxies, names, failures, SIGKILL and restarts."""

from __future__ import annotations

import asyncio
import os
import pickle
import queue
import signal
import time
from typing import Any

import pytest

import procshare
from procshare.actors import Actor, ActorDeadError, ActorRef, Restart


class Tally(Actor):
    def __init__(self, start: int = 0, log: Any = None) -> None:
        self.total, self.log = start, log

    def on_start(self) -> None:
        if self.log is not None:
            self.log.append("started")

    def on_stop(self) -> None:
        if self.log is not None:
            self.log.append("stopped")

    def on_failure(self, exc_type: Any, exc_value: BaseException, tb: Any) -> None:
        if self.log is not None:
            self.log.append(f"failed: {exc_value}")

    def on_receive(self, message: Any) -> Any:
        if message == "total":
            return self.total
        if message == "pid":
            return os.getpid()
        if message == "fail":
            raise ValueError("failed in the actor")
        if isinstance(message, tuple) and message[0] == "wait":
            message[1].wait(30)
            return None
        self.total += message
        return self.total

    def add(self, n: int) -> int:
        self.total += n
        return self.total

    def stop_self(self) -> str:
        self.actor_ref.stop()
        return "stopping"


def _pid(ref: ActorRef) -> int:
    pid: int = ref.ask("pid", timeout=30)
    return pid


def test_tell_ask_proxy_and_stop(ctx: Any) -> None:
    log = procshare.List()
    ref = Tally.start(10, log, ctx=ctx)
    for _ in range(100):
        ref.tell(1)
    assert ref.ask("total", timeout=30) == 110
    proxy = ref.proxy()
    assert proxy.add(5).get(timeout=30) == 115 and proxy.total.get(timeout=30) == 115
    assert ref.ask(1, block=False).get(timeout=30) == 116
    assert _pid(ref) != os.getpid()
    assert ref.stop(timeout=30) and not ref.is_alive()
    assert list(log) == ["started", "stopped"]
    with pytest.raises(ActorDeadError, match="stopped"):
        ref.ask("total", timeout=30)
    with pytest.raises(ActorDeadError):
        ref.tell(1)
    assert ref.stop() is False


def test_an_actor_can_stop_itself() -> None:
    log = procshare.List()
    ref = Tally.start(0, log)
    assert ref.proxy().stop_self().get(timeout=30) == "stopping"
    deadline = time.monotonic() + 30
    while ref.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not ref.is_alive() and list(log) == ["started", "stopped"]


def test_a_handler_exception_goes_to_the_asker_and_the_actor_lives_on() -> None:
    log = procshare.List()
    ref = Tally.start(0, log)
    try:
        with pytest.raises(ValueError, match="failed in the actor") as info:
            ref.ask("fail", timeout=30)
        assert "on_receive" in str(info.value.__cause__)
        ref.tell("fail")  # told: on_failure, and on
        assert ref.ask(2, timeout=30) == 2
        assert "failed: failed in the actor" in list(log)
    finally:
        ref.stop(timeout=30)


def test_a_bounded_mailbox_pushes_back() -> None:
    ref = Tally.start(mailbox_size=2)
    release = procshare.Event()
    try:
        ref.tell(("wait", release))
        deadline = time.monotonic() + 30
        while ref._mailbox.qsize() and time.monotonic() < deadline:  # the actor took it
            time.sleep(0.005)
        ref.tell(1)
        ref.tell(1)
        with pytest.raises(queue.Full):
            ref.tell(1, block=False)
        with pytest.raises(queue.Full):
            ref.tell(1, timeout=0.05)
        release.set()
        assert ref.ask("total", timeout=30) == 2
    finally:
        release.set()
        ref.stop(timeout=30)


def _ask_from_child(blob: bytes, out: Any) -> None:
    ref = pickle.loads(blob)
    out.put(ref.ask(7, timeout=30))


def _lookup_and_ask(name: str, out: Any) -> None:
    out.put(ActorRef.lookup(name).proxy().add(1).get(timeout=30))


def test_refs_travel_and_named_actors_are_found(ctx: Any, name: str) -> None:
    ref = Tally.start(name=name, ctx=ctx)
    out = procshare.Queue()
    try:
        for target, arg in ((_ask_from_child, pickle.dumps(ref)), (_lookup_and_ask, name)):
            proc = ctx.Process(target=target, args=(arg, out))
            proc.start()
            proc.join(60)
            assert proc.exitcode == 0
        # two processes' messages: each keeps its own order, not the other's (as with
        # multiprocessing.Queue)
        assert sorted([out.get(timeout=10), out.get(timeout=10)]) == [7, 8]
        assert ActorRef.lookup(name) == ref
    finally:
        ref.stop(timeout=30)
    with pytest.raises(procshare.NotFoundError):
        ActorRef.lookup(name)  # a stopped actor's name is gone


def test_a_name_is_one_running_actor(name: str) -> None:
    ref = Tally.start(name=name)
    pid = _pid(ref)
    with pytest.raises(ValueError, match="is running"):
        Tally.start(name=name)
    ref.tell(5)  # left in the mailbox of an actor that dies without stopping
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while ref.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = Tally.start(name=name)  # the dead one's record and mailbox are replaced
    try:
        assert fresh.ask("total", timeout=30) == 0 and fresh != ref
    finally:
        fresh.stop(timeout=30)


def test_proxy_futures_are_awaitable() -> None:
    ref = Tally.start(1)

    async def main() -> tuple[int, int]:
        proxy = ref.proxy()
        return await proxy.add(2), await proxy.total

    try:
        assert asyncio.run(main()) == (3, 3)
    finally:
        ref.stop(timeout=30)


def test_a_killed_actor_fails_pending_and_later_asks_promptly() -> None:
    ref = Tally.start()
    release = procshare.Event()
    pid = _pid(ref)
    ref.tell(("wait", release))
    pending = ref.ask("total", block=False)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(ActorDeadError):
        pending.get(timeout=30)
    assert time.monotonic() - t0 < 2  # about LIVENESS_SLICE; generous for a loaded machine
    with pytest.raises(ActorDeadError):
        ref.ask("total", timeout=30)


def test_a_restart_policy_restarts_with_fresh_state() -> None:
    ref = Tally.start(100, restart=Restart(max_restarts=1, backoff=0.01))
    try:
        ref.tell(5)
        first = _pid(ref)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while ref._record.get("restarts") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ref.ask("total", timeout=30) == 100  # a fresh actor
        second = _pid(ref)
        assert second != first
        os.kill(second, signal.SIGKILL)  # one restart allowed: this one is final
        deadline = time.monotonic() + 30
        while ref._record.get("state") != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ActorDeadError):
            ref.ask("total", timeout=30)
    finally:
        ref.stop(timeout=5)
