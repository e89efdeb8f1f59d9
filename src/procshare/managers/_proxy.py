"""Proxies: handles on objects that live in a manager's server process.

multiprocessing's proxy interface (``_callmethod``, ``_getvalue``, exposed
methods, proxies returned through ``method_to_typeid``), without its known
failures: the reference a proxy holds is taken before the proxy is pickled
(so the object cannot be released while the pickle travels), a fork takes one
for the child before it happens, proxies find their way home without their
manager, and a server-side exception reaches the caller with the server's
traceback as its cause.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from multiprocessing import process, util
from typing import Any

from .._errors import raise_remote
from . import _channel
from ._channel import request


class Token:
    """What identifies a managed object: its typeid, its server's address and its id."""

    __slots__ = ("address", "id", "typeid")

    def __init__(self, typeid: str, address: Any, id: int) -> None:
        self.typeid, self.address, self.id = typeid, address, id

    def __getstate__(self) -> tuple[str, Any, int]:
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state: tuple[str, Any, int]) -> None:
        self.typeid, self.address, self.id = state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(typeid={self.typeid!r}, address={self.address!r}, "
            f"id={self.id!r})"
        )


class RemoteError(Exception):
    """An exception in the server that could not travel back itself; str() is its traceback."""


#: Authkeys of the managers this process started or connected to, by address.
_authkeys: dict[Any, bytes] = {}

#: The server running in this process, if any: proxies of its own objects unpickle as the objects.
serving: Any = None


def authkey_for(address: Any) -> bytes:
    key = _authkeys.get(address)
    return key if key is not None else bytes(process.current_process().authkey)


def unwrap(reply: tuple[Any, ...], address: Any, authkey: bytes, local: bool) -> Any:
    """The value a server reply stands for: a result, a new proxy, or a raised exception."""
    kind = reply[0]
    if kind == "ok":
        return reply[1]
    if kind == "proxy":
        _, typeid, ident, exposed, proxytype = reply
        cls = proxytype if proxytype is not None else auto_proxy_type(typeid, exposed)
        return cls(Token(typeid, address, ident), authkey=authkey, exposed=exposed, incref=False,
                   local=local)  # fmt: skip
    _, exc, text = reply
    if exc is None:
        raise RemoteError(text)
    raise_remote(exc, text)


_live: weakref.WeakSet[BaseProxy] = weakref.WeakSet()  # proxies owning a reference here


class BaseProxy:
    """A handle on an object in a manager's server (multiprocessing's BaseProxy)."""

    _exposed_: tuple[str, ...] | None = None
    _pid: int  # the process that owns this proxy's reference
    _close: Any  # its Finalize, which gives the reference back

    def __init__(
        self,
        token: Token,
        serializer: str = "pickle",
        manager: Any = None,
        authkey: bytes | None = None,
        exposed: tuple[str, ...] | None = None,
        incref: bool = True,
        manager_owned: bool = False,
        *,
        local: bool = True,
    ) -> None:
        self._token, self._id, self._manager = token, token.id, manager
        self._authkey = bytes(authkey) if authkey is not None else authkey_for(token.address)
        self._local = local
        if exposed is not None:
            self._exposed_ = tuple(exposed)
        self._owned = not manager_owned
        if incref and self._owned:
            self._incref()
        if self._owned:
            self._adopt()
        util.register_after_fork(self, BaseProxy._adopt)

    def _adopt(self) -> None:
        """Make this process the owner of the proxy's reference (it decrefs when done)."""
        if not self._owned:
            return
        close = getattr(self, "_close", None)
        if close is not None and close.still_active() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        token = self._token
        self._close = util.Finalize(
            self, _decref, args=(token.address, self._authkey, self._id, self._pid, self._local),
            exitpriority=10,
        )  # fmt: skip
        _live.add(self)

    def _request(self, msg: tuple[Any, ...]) -> Any:
        reply = request(self._token.address, self._authkey, msg, self._local)
        if reply[0] == "ok":
            return reply[1]
        return unwrap(reply, self._token.address, self._authkey, self._local)

    def _callmethod(
        self, methodname: str, args: tuple[Any, ...] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """Call methodname on the referent in the server and return (or raise) its result."""
        return self._request(("call", self._id, methodname, args, kwds or None))

    def _getvalue(self) -> Any:
        """A copy of the referent."""
        return self._request(("getvalue", self._id))

    def _incref(self) -> None:
        """Take one more reference on the referent (a proxy owns one)."""
        self._request(("incref", [self._id]))

    def __reduce__(self) -> tuple[Any, ...]:
        # The receiver owns a reference taken now: the object outlives the journey.
        self._incref()
        cls = None if getattr(type(self), "_auto", False) else type(self)
        return (rebuild_proxy, (cls, self._token, self._exposed_, self._local))

    def __deepcopy__(self, memo: Any) -> Any:
        return self._getvalue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object, typeid {self._token.typeid!r} at {id(self):#x}>"

    def __str__(self) -> str:
        try:
            return str(self._callmethod("__repr__"))
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


def _decref(address: Any, authkey: bytes, ident: int, pid: int, local: bool) -> None:
    if os.getpid() != pid:
        return  # a forked copy that never owned this reference
    with contextlib.suppress(*_channel.GONE):  # if the server is gone, the object is too
        request(address, authkey, ("decref", ident), local)


def rebuild_proxy(
    cls: type[BaseProxy] | None, token: Token, exposed: tuple[str, ...] | None, local: bool
) -> Any:
    """Unpickle a proxy: the referent itself inside its own server, else a proxy owning the
    reference that pickling took."""
    if serving is not None and serving.address == token.address:
        entry = serving.objects.get(token.id)
        if entry is not None:
            serving.op_decref(True, token.id)
            return entry.obj
    if cls is None:
        cls = auto_proxy_type(token.typeid, exposed or ())
    return cls(token, authkey=authkey_for(token.address), exposed=exposed, incref=False,
               local=local)  # fmt: skip


def _before_fork() -> None:
    """Take, for the child about to be forked, a reference on everything proxies here hold."""
    by_server: dict[tuple[Any, bytes, bool], list[int]] = {}
    for p in list(_live):
        if p._owned and getattr(p, "_pid", None) == os.getpid():
            by_server.setdefault((p._token.address, p._authkey, p._local), []).append(p._id)
    for (address, authkey, local), ids in by_server.items():
        with contextlib.suppress(*_channel.GONE):
            request(address, authkey, ("incref", ids), local)


def _after_fork_in_child() -> None:
    for p in list(_live):
        p._adopt()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def add_methods(cls: type[BaseProxy], names: tuple[str, ...]) -> None:
    """Give cls a method per name that calls the referent's method of that name."""

    def method(meth: str) -> Any:
        def call(self: BaseProxy, /, *args: Any, **kwds: Any) -> Any:
            return self._callmethod(meth, args, kwds)

        call.__name__ = call.__qualname__ = meth
        return call

    for meth in names:
        if meth not in cls.__dict__:
            setattr(cls, meth, method(meth))


def make_proxy_type(name: str, exposed: tuple[str, ...]) -> type[BaseProxy]:
    """A BaseProxy subclass with one method per exposed name (multiprocessing's MakeProxyType)."""
    cls = type(name, (BaseProxy,), {"_exposed_": tuple(exposed)})
    add_methods(cls, tuple(exposed))
    return cls


_auto_types: dict[tuple[str, tuple[str, ...]], type[BaseProxy]] = {}


def auto_proxy_type(typeid: str, exposed: tuple[str, ...]) -> type[BaseProxy]:
    key = (typeid, tuple(exposed))
    cls = _auto_types.get(key)
    if cls is None:
        cls = _auto_types[key] = make_proxy_type(f"AutoProxy[{typeid}]", tuple(exposed))
        cls._auto = True  # type: ignore[attr-defined]  # not importable: pickled by its parts
    return cls


def AutoProxy(
    token: Token,
    serializer: str = "pickle",
    manager: Any = None,
    authkey: bytes | None = None,
    exposed: tuple[str, ...] | None = None,
    incref: bool = True,
    manager_owned: bool = False,
) -> BaseProxy:
    """A proxy whose methods are the referent's exposed (default: public) methods."""
    if exposed is None:
        key = authkey or authkey_for(token.address)
        exposed = unwrap(
            request(token.address, key, ("exposed", token.id)), token.address, key, True
        )
    cls = auto_proxy_type(token.typeid, tuple(exposed))
    return cls(token, serializer, manager, authkey, exposed, incref, manager_owned)
