"""The server process of a manager: it owns objects and answers calls on them.

Each client thread has its own channel (see _channel) and its own serving
thread here, so a call that blocks holds up nobody else.  Objects of
registered types live in the server, counted by the references their proxies
hold; the shared-memory types a SyncManager makes live in shared memory and
only their ownership is here: the server keeps them until it shuts down.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import pickle
import queue
import sys
import threading
import traceback
from collections.abc import Callable, MappingView
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from typing import Any

from .._data.queue import Queue
from .._shm.shared import ProxyMethods, Shared
from . import _proxy
from ._channel import CHANNEL_CAPACITY, Channel, machine_id

log = logging.getLogger("procshare.managers")

#: Methods every proxy may call, whatever its exposed list says (as in multiprocessing).
_ALWAYS = frozenset({"__repr__", "__str__"})


@dataclass(frozen=True)
class TypeSpec:
    """What register() recorded for one typeid."""

    callable: Callable[..., Any] | None
    exposed: tuple[str, ...] | None
    method_to_typeid: dict[str, str]
    proxytype: Any
    shared: bool = False  # a shared-memory type: local clients get the object itself


@dataclass
class _Entry:
    obj: Any
    typeid: str
    exposed: frozenset[str] | None
    refs: int = 1
    method_to_typeid: dict[str, str] = field(default_factory=dict)


def public_methods(obj: Any) -> tuple[str, ...]:
    """The names of obj's methods that do not start with '_'."""
    return tuple(n for n in dir(obj) if n[0] != "_" and callable(getattr(obj, n, None)))


class Server:
    """Serves the objects of one manager (multiprocessing's ``Server`` interface)."""

    def __init__(
        self,
        registry: dict[str, TypeSpec],
        address: Any,
        authkey: bytes,
        serializer: str = "pickle",
    ) -> None:
        if serializer != "pickle":
            raise ValueError(f"serializer {serializer!r} is not supported; use 'pickle'")
        self.registry = registry
        self.authkey = bytes(authkey)
        self.listener = Listener(address, authkey=self.authkey)
        self.address = self.listener.address
        self.machine = machine_id()
        self.objects: dict[int, _Entry] = {}
        self.owned: list[Any] = []  # shared-memory objects made for clients: kept until shutdown
        self.mutex = threading.Lock()
        self.stop_event = threading.Event()
        self._ids = itertools.count(1)
        self._ops = {n[3:]: getattr(self, n) for n in dir(self) if n.startswith("op_")}

    # -- running --------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept clients until shutdown is asked for, then release everything and exit."""
        _proxy.serving = self
        accepter = threading.Thread(target=self._accept, daemon=True, name="procshare-accept")
        accepter.start()
        try:
            self.stop_event.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.release_all()
            _proxy.serving = None
        if threading.current_thread() is threading.main_thread():
            sys.exit(0)  # the server's process ends with it, as multiprocessing's does

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn = self.listener.accept()
            except AuthenticationError as e:
                log.warning("manager at %r refused a client: %s", self.address, e)
                continue
            except OSError:
                if self.stop_event.is_set():
                    return
                continue
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()

    def _serve_client(self, conn: Connection) -> None:
        try:
            hello = conn.recv()
        except (EOFError, OSError):
            return
        local = isinstance(hello, tuple) and len(hello) == 2 and hello[1] == self.machine
        if local:
            # one producer each: one shard (another would take a second buffer)
            requests, replies = (Queue(capacity=CHANNEL_CAPACITY, shards=1) for _ in range(2))
            conn.send(("shm", requests, replies))
            channel = Channel(conn, requests, replies)
        else:
            conn.send(("conn",))
            channel = Channel(conn, None, None)
        try:
            while not self.stop_event.is_set():
                try:
                    msg = channel.recv(timeout=1.0)
                except queue.Empty:
                    continue
                channel.send(self._reply(msg, local))
        except (EOFError, OSError):
            pass  # the client has gone
        finally:
            conn.close()
            if local:
                requests.unlink()
                replies.unlink()

    # -- requests -------------------------------------------------------------

    def _reply(self, msg: Any, local: bool) -> tuple[Any, ...]:
        try:
            if msg[0] == "call":  # the hot request: no lookup, no re-packing of arguments
                return self._call(msg, local)
            handler = self._ops.get(msg[0])
            if handler is None:
                raise ValueError(f"unknown request {msg[0]!r}")
            reply: tuple[Any, ...] = handler(local, *msg[1:])
            return reply
        except BaseException as e:  # every failure goes back to the caller
            return _error(e)

    def _call(self, msg: tuple[Any, ...], local: bool) -> tuple[Any, ...]:
        """("call", ident, method, args, kwds or None): the method's result, or a proxy."""
        _, ident, method, args, kwds = msg
        entry = self.objects.get(ident) or self._entry(ident)
        exposed = entry.exposed
        if exposed is not None and method not in exposed and method not in _ALWAYS:
            raise AttributeError(
                f"method {method!r} of {type(entry.obj).__name__!r} object is not in "
                f"exposed={sorted(exposed)!r}"
            )
        if method == "__getattribute__":  # an attribute read, as Python's getattr makes it
            fn: Any = functools.partial(getattr, entry.obj)
        else:
            fn = getattr(entry.obj, method)
        result = fn(*args, **kwds) if kwds else fn(*args)
        typeid = entry.method_to_typeid.get(method) if entry.method_to_typeid else None
        if typeid is not None:
            return self._proxy_reply(result, typeid, local)
        if not local:  # what only this machine can attach travels as a proxy, or as a copy
            if isinstance(result, Shared | ProxyMethods):
                return self._proxy_reply(result, self._typeid_of(result), local)
            if isinstance(result, MappingView):
                result = list(result)  # type: ignore[call-overload]
        return ("ok", result)

    def op_create(
        self, local: bool, typeid: str, args: tuple[Any, ...], kwds: dict[str, Any]
    ) -> tuple[Any, ...]:
        spec = self._spec(typeid)
        if spec.callable is None:
            raise TypeError(f"typeid {typeid!r} was registered without a callable")
        obj = spec.callable(*args, **kwds)
        if spec.shared:
            with self.mutex:
                self.owned.append(obj)
            if local:
                return ("ok", obj)
        return self._proxy_reply(obj, typeid, local)

    def op_getvalue(self, local: bool, ident: int) -> tuple[Any, ...]:
        obj = self._entry(ident).obj
        return ("ok", obj._getvalue() if isinstance(obj, ProxyMethods) else obj)

    def op_exposed(self, local: bool, ident: int) -> tuple[Any, ...]:
        return ("ok", tuple(sorted(self._entry(ident).exposed or ())))

    def op_incref(self, local: bool, idents: list[int]) -> tuple[Any, ...]:
        with self.mutex:
            for ident in idents:
                self._entry(ident).refs += 1
        return ("ok", None)

    def op_decref(self, local: bool, ident: int) -> tuple[Any, ...]:
        with self.mutex:
            entry = self.objects.get(ident)
            if entry is not None:
                entry.refs -= 1
                if entry.refs <= 0:
                    del self.objects[ident]
        return ("ok", None)

    def op_number_of_objects(self, local: bool) -> tuple[Any, ...]:
        with self.mutex:
            return ("ok", len(self.objects))

    def op_debug_info(self, local: bool) -> tuple[Any, ...]:
        with self.mutex:
            lines = [
                f"  {ident}:       refcount={e.refs}\n    {str(e.obj)[:75]}"
                for ident, e in self.objects.items()
            ]
        return ("ok", "\n".join(lines))

    def op_pid(self, local: bool) -> tuple[Any, ...]:
        return ("ok", os.getpid())

    def op_shutdown(self, local: bool) -> tuple[Any, ...]:
        self.stop_event.set()
        return ("ok", None)

    # -- helpers --------------------------------------------------------------

    def _spec(self, typeid: str) -> TypeSpec:
        try:
            return self.registry[typeid]
        except KeyError:
            raise KeyError(f"no type registered as {typeid!r}") from None

    def _entry(self, ident: int) -> _Entry:
        try:
            return self.objects[ident]
        except KeyError:
            raise KeyError(f"the manager holds no object {ident!r} (released or unknown)") from None

    def _typeid_of(self, obj: Any) -> str:
        """The shared typeid registered with obj's type (for proxies of nested objects)."""
        for typeid, spec in self.registry.items():
            if spec.shared and isinstance(spec.callable, type) and type(obj) is spec.callable:
                return typeid
        return type(obj).__name__

    def _proxy_reply(self, obj: Any, typeid: str, local: bool) -> tuple[Any, ...]:
        """Keep obj with one reference for the proxy the reply becomes."""
        spec = self.registry.get(typeid)
        exposed = spec.exposed if spec is not None else None
        ident = next(self._ids)
        names = frozenset(exposed) if exposed is not None else frozenset(public_methods(obj))
        entry = _Entry(obj, typeid, names, 1, dict(spec.method_to_typeid) if spec else {})
        with self.mutex:
            self.objects[ident] = entry
        proxytype = spec.proxytype if spec is not None else None
        return ("proxy", typeid, ident, tuple(sorted(names)), proxytype)

    def release_all(self) -> None:
        """Drop every object and remove the names of the shared ones."""
        with self.mutex:
            owned, self.owned = self.owned, []
            self.objects.clear()
        for obj in owned:
            unlink = getattr(obj, "unlink", None)
            if unlink is not None:
                with contextlib.suppress(OSError):
                    unlink()
        self.listener.close()


def _error(e: BaseException) -> tuple[Any, ...]:
    """An error reply: the exception when it pickles, with the server's traceback as text."""
    text = "".join(traceback.format_exception(e))
    try:
        pickle.dumps(e)
    except Exception:
        return ("error", None, text)
    return ("error", e, text)
