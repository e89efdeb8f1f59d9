"""Connections to a Redis server: the URL, one client per process, errors made clear.

A Connection is what a Redis context and its objects share: where the server
is (the URL, with the password kept out of every repr and handle unless the
user asks for it in handles), one redis-py client per process (a child after
fork makes its own), the Lua scripts registered once per client, and the one
place where redis-py's connection errors become StoreUnavailableError with the
redacted URL.  Blocking commands never wait longer than the socket timeout:
callers wait in slices (see _waits).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..._errors import StoreUnavailableError

SCHEMES = ("redis", "rediss", "unix")
PREFIX = "procshare:"
TIMEOUT = 10.0  # seconds a command may take before StoreUnavailableError (?timeout=)
#: rediss:// query options, redis-py's names: which CA to trust, the client's certificate
#: and key (servers that check clients), and whether to check the server's certificate.
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
CERT_REQS = ("required", "optional", "none")

try:
    import redis
    from redis import exceptions as _redis_errors
except ImportError:  # pragma: no cover - the extra is not installed
    redis = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Location:
    """Where a server is: the URL's parts, the password apart from everything printed."""

    scheme: str
    host: str
    port: int
    db: int
    path: str = ""  # unix socket
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    timeout: float = TIMEOUT
    tls: tuple[tuple[str, str], ...] = ()  # TLS_OPTIONS given, in that order

    @classmethod
    def parse(cls, url: str) -> Location:
        """redis://[[user]:password@]host[:port][/db], rediss://...[?ssl_ca_certs=...],
        unix://[..@]/path[?db=N]; any of them ?timeout=S.  Unknown options are errors."""
        if not isinstance(url, str):
            raise TypeError(f"a Redis URL is a str, not {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(
                f"a Redis URL starts with redis://, rediss:// or unix://: {_shown(url)}"
            )
        query = parse_qs(parts.query)
        allowed = {"timeout", "db"} | (set(TLS_OPTIONS) if parts.scheme == "rediss" else set())
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise ValueError(f"bad Redis URL {_shown(url)}: unknown option {unknown[0]!r}")
        tls = tuple((k, query[k][0]) for k in TLS_OPTIONS if k in query)
        if dict(tls).get("ssl_cert_reqs", "required") not in CERT_REQS:
            raise ValueError(f"bad Redis URL {_shown(url)}: ssl_cert_reqs is one of {CERT_REQS}")
        try:
            port = parts.port or 6379
            timeout = float(query.get("timeout", [TIMEOUT])[0])
            db = int(query["db"][0]) if "db" in query else int(parts.path.strip("/") or 0)
        except ValueError as err:
            raise ValueError(f"bad Redis URL {_shown(url)}: {err}") from None
        if parts.scheme == "unix":
            host, path, db = "", parts.path, int(query.get("db", ["0"])[0])
        else:
            host, path = parts.hostname or "localhost", ""
        if not 0 < timeout <= 3600 or db < 0:
            raise ValueError(f"bad Redis URL {_shown(url)}: timeout or db out of range")
        return cls(
            parts.scheme,
            host,
            port,
            db,
            path,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password is not None else None,
            timeout,
            tls,
        )

    def url(self, password: bool = False) -> str:
        """The URL again, with the password only when asked (never in what is printed)."""
        auth = ""
        if self.username or (password and self.password):
            auth = quote(self.username or "", safe="")
            if password and self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        options = [f"timeout={self.timeout:g}"] if self.timeout != TIMEOUT else []
        options += [f"{k}={quote(v, safe='/')}" for k, v in self.tls]
        query = "&".join(options)
        if self.scheme == "unix":
            query = "&".join(q for q in (f"db={self.db}" if self.db else "", query) if q)
            return f"unix://{auth}{self.path}" + (f"?{query}" if query else "")
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.db}" + (
            f"?{query}" if query else ""
        )

    def __str__(self) -> str:
        return self.url()


def _shown(url: str) -> str:
    """url with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class Connection:
    """One server's client in this process (another after fork), its scripts, its errors."""

    def __init__(self, location: Location, pickle_password: bool = False) -> None:
        if redis is None:
            raise ImportError("the Redis back end needs redis-py: pip install 'procshare[redis]'")
        self.location = location
        self.pickle_password = pickle_password
        self._pid = -1
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._guard = threading.Lock()

    @property
    def client(self) -> Any:
        """This process's redis-py client (a new one after fork: sockets are not shared)."""
        if self._pid != os.getpid():
            with self._guard:
                if self._pid != os.getpid():
                    loc = self.location
                    common: dict[str, Any] = dict(
                        db=loc.db,
                        username=loc.username,
                        password=loc.password,
                        socket_timeout=loc.timeout,
                        socket_connect_timeout=loc.timeout,
                        retry=None,
                        health_check_interval=30,
                    )
                    if loc.scheme == "unix":
                        self._client = redis.Redis(unix_socket_path=loc.path, **common)
                    else:
                        tls: dict[str, Any] = (
                            {"ssl": True, **dict(loc.tls)} if loc.scheme == "rediss" else {}
                        )
                        self._client = redis.Redis(host=loc.host, port=loc.port, **common, **tls)
                    self._scripts = {}
                    self._pid = os.getpid()
        return self._client

    def script(self, source: str) -> Callable[..., Any]:
        """The Lua script as a callable (keys=[...], args=[...]), registered once."""
        client = self.client
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = client.register_script(source)
        return found  # type: ignore[no-any-return]

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Connection failures as StoreUnavailableError naming the server (no password)."""
        try:
            yield
        except _redis_errors.AuthenticationError as err:
            raise PermissionError(f"Redis at {self.location} refused: {err}") from None
        except (_redis_errors.ConnectionError, _redis_errors.TimeoutError) as err:
            raise StoreUnavailableError(
                f"Redis at {self.location} did not answer: {err} (the call may or may not "
                "have taken effect; the next call reconnects)"
            ) from err
        except _redis_errors.ResponseError as err:
            text = str(err)
            if "NOAUTH" in text or "WRONGPASS" in text or "NOPERM" in text:
                raise PermissionError(f"Redis at {self.location} refused: {text}") from None
            raise

    def __repr__(self) -> str:
        return f"<procshare Redis connection {self.location}>"


_CONNECTIONS: dict[tuple[Location, str | None, bool], Connection] = {}
_REGISTRY_GUARD = threading.Lock()


def connection(location: Location, pickle_password: bool = False) -> Connection:
    """This process's Connection for location with its password (made on first use)."""
    key = (location, location.password, pickle_password)
    with _REGISTRY_GUARD:
        found = _CONNECTIONS.get(key)
        if found is None:
            found = _CONNECTIONS[key] = Connection(location, pickle_password)
        return found


def for_handle(url: str) -> Connection:
    """The Connection a handle unpickled here uses: the URL's own password if it carries
    one, else this process's connection to the same server, else the password of
    PROCSHARE_URL when that names the same server."""
    location = Location.parse(url)
    if location.password is None:
        with _REGISTRY_GUARD:
            known = [c for (loc, password, _), c in _CONNECTIONS.items()
                     if loc == location and password is not None]  # fmt: skip
        if known:
            return known[0]
        env = os.environ.get("PROCSHARE_URL")
        if env:
            from_env = Location.parse(env)
            if from_env == location:
                location = from_env
    return connection(location)
