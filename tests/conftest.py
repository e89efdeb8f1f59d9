"""Shared fixtures: start methods, unique names, and a check that nothing is left in /dev/shm."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from procshare import _core
from procshare._shm.inventory import remove
from procshare._shm.segment import at_exit

SHM = "/dev/shm"
PREFIX = "procshare."


def segments() -> set[str]:
    return {f for f in os.listdir(SHM) if f.startswith(PREFIX)}


@pytest.fixture(scope="session", autouse=True)
def no_leftover_segments() -> Iterator[None]:
    before = segments()
    yield
    # Every test is over: do now what this process's exit does (remove its anonymous
    # segments, release its Dict and List handles); children did it at their exits,
    # and named objects were removed by the tests.
    at_exit.run()
    left = sorted(s for s in segments() - before if _ours(s[len(PREFIX) :]))
    assert not left, f"segments left behind: {left}"


def _ours(name: str) -> bool:
    """Whether this session made the segment: a name from the fixture below, or an
    anonymous one whose creator (its pid is in the name) is this process or has exited
    (segments of another live program, such as a second test run, are not ours)."""
    if not name.startswith("_"):
        return any(name.startswith(ours) for ours in NAMES)
    pid = int(name[1:].split("_")[0])
    return pid == os.getpid() or not _core.pid_alive(pid)


NAMES: set[str] = set()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique segment name, unlinked after the test whatever happened."""
    n = f"test-{uuid.uuid4().hex[:12]}"
    NAMES.add(n)
    yield n
    with contextlib.suppress(FileNotFoundError):
        remove(n)


@pytest.fixture(params=["fork", "spawn", "forkserver"])
def ctx(request: pytest.FixtureRequest) -> Any:
    return mp.get_context(request.param)


def run_all(ctx: Any, target: Any, args_list: list[tuple[Any, ...]], timeout: float = 60) -> None:
    """Start one process per args tuple, join each within timeout, and require exit code 0."""
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout)
            assert not p.is_alive(), f"{p.name} still running after {timeout}s"
            assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


#: Random choices of the tests (kill timings), seeded: a failure can be replayed.
rng = random.Random(20261126)


def asleep(pid: int, tid: int | None = None) -> bool:
    """Whether the process pid (or its thread tid) is asleep in the kernel (state S)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"S"


def wait_asleep(pid: int, tid: int | None = None, timeout: float = 30) -> None:
    """Wait until the process (or thread) sleeps: it has reached the blocking call."""
    end = time.monotonic() + timeout
    while not asleep(pid, tid):
        assert time.monotonic() < end, "never went to sleep"
        time.sleep(0.001)


@contextlib.contextmanager
def running(target: Any, *args: Any) -> Iterator[Any]:
    """A forked process running target(*args, ready), yielded once it has set ready;
    SIGKILLed (if still alive) and reaped afterwards."""
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=target, args=(*args, ready))
    proc.start()
    try:
        assert ready.wait(30), "the process never started its work"
        yield proc
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)


def kill_while_running(target: Any, args: tuple[Any, ...], seconds: tuple[float, float]) -> None:
    """Run target(*args, ready) in a forked process; once it sets ready, let it run for a
    random (seeded) time within seconds, then SIGKILL it and reap it."""
    with running(target, *args):
        time.sleep(rng.uniform(*seconds))


REDIS_PASSWORD = "procshare-test-secret"


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_process(port: int, *options: str) -> Iterator[None]:
    """A real redis-server with these options, listening on port (loopback) once entered;
    skips the test where redis-server or redis-py is missing."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server (.ci/run installs it)")
    pytest.importorskip("redis")
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--daemonize", "no", *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not start in 20 s"
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, with a password, append-only
    persistence and its own directory; yields its URL (password included)."""
    port, workdir = free_port(), tmp_path_factory.mktemp("redis")
    with redis_process(port, "--port", str(port), "--requirepass", REDIS_PASSWORD,
                       "--dir", str(workdir), "--appendonly", "yes", "--save", ""):  # fmt: skip
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
