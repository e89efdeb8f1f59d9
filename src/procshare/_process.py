"""This process's pid, read without a system call.

``os.getpid()`` is a system call each time, which costs more than the rest
of some hot paths (a handle joining and leaving its object's users).  The
pid is kept here and renewed by a fork hook; it is registered when this
module is first imported, before the hooks of the modules that read it, so
theirs see the child's pid.
"""

from __future__ import annotations

import os

#: This process's pid (renewed in a forked child).
pid = os.getpid()


def _forked() -> None:
    global pid
    pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
