"""BaseManager: multiprocessing's manager interface over procshare's server and channels."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing import ProcessError, process, util
from typing import Any, ClassVar

from . import _channel, _proxy
from ._proxy import BaseProxy, unwrap
from ._server import Server, TypeSpec

_INITIAL, _STARTED, _SHUTDOWN = "initial", "started", "shutdown"

#: multiprocessing's proxy classes, by the procshare class that does their work here
#: (filled in by the module that defines them).
PROXY_TWINS: dict[type, type[BaseProxy]] = {}


class BaseManager:
    """A server process that owns objects, and the handles to reach them.

    ``BaseManager(address=None, authkey=None, serializer='pickle', ctx=None, *,
    shutdown_timeout=1.0, local=True)``: multiprocessing's signature.  address
    None listens on a Unix socket; ``(host, port)`` on TCP (port 0: any free
    one).  ``local=False`` keeps every call on the connection even when the
    server shares this machine's memory (what a client elsewhere gets).
    """

    _registry: ClassVar[dict[str, TypeSpec]] = {}

    def __init__(
        self,
        address: Any = None,
        authkey: bytes | None = None,
        serializer: str = "pickle",
        ctx: Any = None,
        *,
        shutdown_timeout: float = 1.0,
        local: bool = True,
    ) -> None:
        if serializer != "pickle":
            raise ValueError(f"serializer {serializer!r} is not supported; use 'pickle'")
        self._address = address
        key = authkey if authkey is not None else process.current_process().authkey
        self._authkey = bytes(key)
        self._serializer = serializer
        self._ctx = ctx or multiprocessing.get_context()
        self._shutdown_timeout = shutdown_timeout
        self._local = local
        self._state = _INITIAL
        self._process: Any = None

    @property
    def address(self) -> Any:
        """Where the server listens."""
        return self._address

    def get_server(self) -> Server:
        """A server for this manager's types, to run in this process with serve_forever()."""
        if self._state != _INITIAL:
            raise ProcessError(f"the manager's server is {self._state}, not initial")
        return Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self) -> None:
        """Use a server that runs elsewhere (started by another process, or get_server())."""
        self._request(("pid",))
        _proxy._authkeys[self._address] = self._authkey
        self._state = _STARTED

    def start(
        self, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        """Start the server process."""
        if self._state != _INITIAL:
            raise ProcessError(f"the manager's server is {self._state}, not initial")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = self._ctx.Pipe(duplex=False)
        self._process = self._ctx.Process(
            target=type(self)._run_server,
            args=(self._registry, self._address, self._authkey, self._serializer, writer,
                  initializer, initargs),
            name=f"{type(self).__name__}-server",
        )  # fmt: skip
        self._process.start()
        writer.close()
        try:
            self._address = reader.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the manager's server process failed to start (exit code {self._process.exitcode})"
            ) from None
        finally:
            reader.close()
        _proxy._authkeys[self._address] = self._authkey
        self._state = _STARTED
        self.shutdown = util.Finalize(  # type: ignore[method-assign]
            self, type(self)._finalize_manager,
            args=(self._process, self._address, self._authkey, self._shutdown_timeout),
            exitpriority=0,
        )  # fmt: skip

    @classmethod
    def _run_server(
        cls,
        registry: dict[str, TypeSpec],
        address: Any,
        authkey: bytes,
        serializer: str,
        writer: Any,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        if initializer is not None:
            initializer(*initargs)
        server = Server(registry, address, authkey, serializer)
        signal.signal(signal.SIGTERM, lambda *_: server.stop_event.set())  # releases, then exits
        # A process the server forks (a Pool's worker) is not the server: SIGTERM ends it.
        os.register_at_fork(after_in_child=_default_sigterm)
        writer.send(server.address)
        writer.close()
        server.serve_forever()

    @staticmethod
    def _finalize_manager(process: Any, address: Any, authkey: bytes, timeout: float) -> None:
        if process.is_alive():
            with contextlib.suppress(*_channel.GONE):
                _channel.request(address, authkey, ("shutdown",))
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout)
                if process.is_alive():
                    process.kill()
                    process.join()
        _channel.forget(address)

    def shutdown(self) -> None:
        """Stop the server process (releasing every object it owns)."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for the server process to end."""
        if self._process is not None:
            self._process.join(timeout)

    def __enter__(self) -> Any:
        if self._state == _INITIAL:
            self.start()
        if self._state != _STARTED:
            raise ProcessError(f"the manager's server is {self._state}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self._state = _SHUTDOWN

    def __reduce__(self) -> Any:
        raise TypeError(
            "a manager does not pickle; pass its objects (they pickle as handles), or its "
            "address, and connect() there"
        )

    def _request(self, msg: tuple[Any, ...]) -> Any:
        reply = _channel.request(self._address, self._authkey, msg, self._local)
        return unwrap(reply, self._address, self._authkey, self._local)

    def _create(self, typeid: str, /, *args: Any, **kwds: Any) -> Any:
        if self._state != _STARTED:
            raise ProcessError(f"the manager is {self._state}: start() or connect() it first")
        obj = self._request(("create", typeid, args, kwds))
        if isinstance(obj, _proxy.BaseProxy):
            obj._manager = self
        return obj

    def _number_of_objects(self) -> int:
        n: int = self._request(("number_of_objects",))
        return n

    def _debug_info(self) -> str:
        text: str = self._request(("debug_info",))
        return text

    @classmethod
    def register(
        cls,
        typeid: str,
        callable: Callable[..., Any] | None = None,
        proxytype: Any = None,
        exposed: Any = None,
        method_to_typeid: dict[str, str] | None = None,
        create_method: bool = True,
    ) -> None:
        """Make typeid a type this manager's server creates and serves (BaseManager.register)."""
        cls._add(typeid, callable, proxytype, exposed, method_to_typeid, create_method)

    @classmethod
    def _add(
        cls,
        typeid: str,
        callable: Callable[..., Any] | None,
        proxytype: Any,
        exposed: Any,
        method_to_typeid: dict[str, str] | None,
        create_method: bool,
        shared: bool = False,
    ) -> None:
        if not isinstance(typeid, str) or not typeid.isidentifier():
            raise ValueError(f"typeid must be an identifier, not {typeid!r}")
        if "_registry" not in cls.__dict__:
            cls._registry = dict(cls._registry)
        if isinstance(proxytype, type) and not issubclass(proxytype, BaseProxy):
            proxytype = PROXY_TWINS.get(proxytype)
            if proxytype is None:
                raise TypeError(
                    "proxytype must derive from procshare.managers.BaseProxy (multiprocessing's "
                    "proxies speak to multiprocessing's server)"
                )
        exposed = exposed if exposed is not None else getattr(proxytype, "_exposed_", None)
        if method_to_typeid is None:
            method_to_typeid = getattr(proxytype, "_method_to_typeid_", None) or {}
        cls._registry[typeid] = TypeSpec(
            callable, tuple(exposed) if exposed is not None else None, dict(method_to_typeid),
            proxytype if isinstance(proxytype, type) else None, shared,
        )  # fmt: skip
        if create_method:

            def create(self: BaseManager, /, *args: Any, **kwds: Any) -> Any:
                return self._create(typeid, *args, **kwds)

            create.__name__ = create.__qualname__ = typeid
            setattr(cls, typeid, create)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
