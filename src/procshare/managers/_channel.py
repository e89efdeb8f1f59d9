"""How a manager's clients reach its server.

Every client thread opens one authenticated connection to the server's
listener (multiprocessing.connection: the authkey handshake comes before any
request).  A client on the same machine then asks for a shared-memory channel:
the server creates two procshare queues, requests one way and replies the
other, and the connection stays open only as a sign of life (its end is how
each side learns that the other died) and for messages too large for a queue.
A client elsewhere, or one told not to share memory, sends its requests over
the connection itself.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from multiprocessing.connection import Client, Connection
from typing import Any

from .. import _process
from .._data.queue import Queue
from .._errors import ProcshareError

#: Bytes of each channel queue; a larger message goes over the connection.
CHANNEL_CAPACITY = 1 << 20

#: How often a waiting side checks that the other is still there (seconds).
LIVENESS_SLICE = 0.05

#: Put into a queue in place of a message that travels over the connection.
_OVERSIZE = "#oversize"


class ServerGoneError(ProcshareError, ConnectionError):
    """The manager's server process is gone: no call can reach its objects."""


#: What a request to a server that has gone may raise.
GONE = (ServerGoneError, OSError, EOFError)


def machine_id() -> str:
    """What two processes share when they see the same shared memory: the boot and /dev/shm."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "?"
    st = os.stat("/dev/shm")
    return f"{boot}:{st.st_dev}:{st.st_ino}:{os.getuid()}"


class Channel:
    """One side of a channel: a connection, and two queues when the peer shares memory.

    Every request and reply is a tuple; the oversize marker is the one str."""

    def __init__(self, conn: Connection, inbox: Queue | None, outbox: Queue | None) -> None:
        self.conn, self.inbox, self.outbox = conn, inbox, outbox

    def send(self, msg: Any) -> None:
        if self.outbox is None:
            self.conn.send(msg)
            return
        try:
            self.outbox.put(msg)
        except ValueError:  # larger than the queue: the marker keeps the order
            self.outbox.put(_OVERSIZE)
            self.conn.send(msg)

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; EOFError when the peer has gone, queue.Empty after timeout."""
        if self.inbox is None:
            if timeout is not None and not self.conn.poll(timeout):
                raise queue.Empty
            return self.conn.recv()
        waited = 0.0
        while True:
            try:
                msg = self.inbox.get(timeout=LIVENESS_SLICE)
            except queue.Empty:
                # The peer writes to the connection only after an oversize marker, so
                # a readable connection with no message queued means it has closed.
                if self.conn.poll():
                    try:
                        msg = self.inbox.get_nowait()
                    except queue.Empty:
                        raise EOFError("the peer closed the channel") from None
                else:
                    waited += LIVENESS_SLICE
                    if timeout is not None and waited >= timeout:
                        raise queue.Empty from None
                    continue
            return self.conn.recv() if msg == _OVERSIZE else msg

    def exchange(self, msg: Any) -> Any:
        """send(msg), then recv(): one request's round trip, its common case inline."""
        inbox = self.inbox
        if inbox is None:
            self.conn.send(msg)
            return self.conn.recv()
        self.send(msg)
        try:
            reply = inbox.get(timeout=LIVENESS_SLICE)
        except queue.Empty:
            return self.recv()
        return reply if type(reply) is tuple else self.conn.recv()  # else the marker

    def close(self) -> None:
        self.conn.close()


class _Clients(threading.local):
    def __init__(self) -> None:
        self.channels: dict[tuple[Any, bytes, bool, int], Channel] = {}


_clients = _Clients()


def open_channel(address: Any, authkey: bytes, local: bool = True) -> Channel:
    """A new channel to the server at address (ServerGoneError when none answers)."""
    try:
        conn = Client(address, authkey=authkey)
    except (OSError, EOFError) as e:
        raise ServerGoneError(f"no manager answers at {address!r}: {e}") from e
    conn.send(("hello", machine_id() if local else None))
    kind, *queues = conn.recv()
    if kind == "shm":
        requests, replies = queues
        return Channel(conn, replies, requests)
    return Channel(conn, None, None)


def channel_to(address: Any, authkey: bytes, local: bool = True) -> Channel:
    """This thread's channel to address, opened on first use (and again after a fork)."""
    key = (address, authkey, local, _process.pid)
    ch = _clients.channels.get(key)
    if ch is None:
        ch = _clients.channels[key] = open_channel(address, authkey, local)
    return ch


def forget(address: Any) -> None:
    """Drop this thread's channels to address, after the server went away (its queues' names
    with them: a server killed before it could remove them leaves them to its clients)."""
    for key in [k for k in _clients.channels if k[0] == address and k[3] == _process.pid]:
        ch = _clients.channels.pop(key)
        ch.close()
        for q in (ch.inbox, ch.outbox):
            if q is not None:
                with contextlib.suppress(OSError, ProcshareError):
                    q.unlink()


def request(address: Any, authkey: bytes, msg: Any, local: bool = True) -> Any:
    """Send msg to the server and return its reply; ServerGoneError if it has gone."""
    ch = channel_to(address, authkey, local)
    try:
        return ch.exchange(msg)
    except (EOFError, OSError) as e:
        forget(address)
        raise ServerGoneError(
            f"the manager at {address!r} has gone: {e or 'connection closed'}"
        ) from e
