"""Actors: state owned by one process, reached only by messages (the article's advice).

Subclass ``Actor``, handle messages in ``on_receive``, and ``start()`` it: it
runs in its own process and returns an ``ActorRef`` with ``tell``, ``ask``,
``proxy`` and ``stop``.  Mailboxes and reply queues are procshare queues, so
messages and answers travel through shared memory with no server between.
"""

from ._actor import Actor, Restart
from ._futures import ActorDeadError, Future
from ._ref import ActorProxy, ActorRef

__all__ = ["Actor", "ActorDeadError", "ActorProxy", "ActorRef", "Future", "Restart"]
