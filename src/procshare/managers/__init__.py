"""Managers: a server process that owns objects, as multiprocessing.managers offers it.

``procshare.Manager()`` returns a started SyncManager whose built-in types
(``dict``, ``list``, ``Value``, the locks, the queues, ``Namespace``, ...) are
procshare's shared-memory objects: on the server's machine no access waits
for the server.  ``BaseManager.register`` serves instances of user classes
from the server process through proxies, over shared-memory channels on one
machine and over authenticated connections (``address=(host, port)``,
``authkey=``) between machines.
"""

from .._data.namespace import Namespace
from ._base import BaseManager
from ._channel import ServerGoneError
from ._proxy import AutoProxy, BaseProxy, RemoteError, Token
from ._proxy import make_proxy_type as MakeProxyType
from ._server import Server
from ._sync import (
    AcquirerProxy,
    ConditionProxy,
    IteratorProxy,
    NamespaceProxy,
    PoolProxy,
    SyncManager,
    ValueProxy,
    started_manager,
)

__all__ = [
    "AcquirerProxy",
    "AutoProxy",
    "BaseManager",
    "BaseProxy",
    "ConditionProxy",
    "IteratorProxy",
    "MakeProxyType",
    "Namespace",
    "NamespaceProxy",
    "PoolProxy",
    "RemoteError",
    "Server",
    "ServerGoneError",
    "SyncManager",
    "Token",
    "ValueProxy",
    "started_manager",
]
