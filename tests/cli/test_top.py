"""procshare in a real terminal (top, and the tables drawn with rich): under tmux, driven by
send-keys, read by capture-pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import pytest

import procshare

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="needs tmux (.ci/run installs it)"
)


def _pane(session: str, history: bool = False) -> str:
    """The pane's screen; with history, every line it printed (what scrolled off too)."""
    since = ["-S", "-"] if history else []
    return subprocess.run(["tmux", "capture-pane", "-p", *since, "-t", session],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def _until(session: str, check: object, timeout: float = 30, history: bool = False) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = _pane(session, history)
        if check(screen):  # type: ignore[operator]
            return screen
        assert time.monotonic() < deadline, f"the screen never showed it:\n{screen}"
        time.sleep(0.1)


def test_top_shows_objects_rates_sorts_and_quits(name: str) -> None:
    counter, queue = procshare.Counter(name=f"{name}.c"), procshare.Queue(name=f"{name}.q")
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            counter.add(100)
            time.sleep(0.001)

    worker = threading.Thread(target=busy)
    worker.start()
    session = f"procshare-top-{name}"
    command = f"{sys.executable} -m procshare top --interval 0.2 '{name}.*'"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "50", command],
                   check=True)  # fmt: skip
    try:
        screen = _until(session, lambda s: f"{name}.c" in s and f"{name}.q" in s)
        assert "sorted by name" in screen
        # The counter's row gets a rate once two samples were taken (the queue's stays 0).
        _until(session, lambda s: any(
            ln.startswith(f"{name}.c") and int(ln.split()[3].replace(",", "")) > 0
            for ln in s.splitlines() if ln.split()[3:4] != ["-"]))  # fmt: skip
        subprocess.run(["tmux", "send-keys", "-t", session, "r"], check=True)
        _until(session, lambda s: "sorted by rate" in s)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 10
        while subprocess.run(["tmux", "has-session", "-t", session],
                             capture_output=True).returncode == 0:  # fmt: skip
            assert time.monotonic() < deadline, "top did not quit on q"
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        counter.unlink()
        queue.unlink()


def test_top_once_prints_a_table(name: str) -> None:
    value = procshare.Value("d", 2.5, name=name)
    try:
        command = [sys.executable, "-m", "procshare", "top", "--once", f"{name}*"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
        (row,) = [ln for ln in out.splitlines() if ln.startswith(name)]
        assert "value" in row and "value=2.5" in row and out.endswith("1 object(s)\n")
    finally:
        value.unlink()


def test_tables_are_drawn_in_a_terminal_and_plain_in_a_pipe(name: str) -> None:
    counter = procshare.Counter(name=name)
    session = f"procshare-ls-{name}"
    # the pane's own size, whatever COLUMNS the tmux server was started with
    command = f"env -u COLUMNS -u LINES {sys.executable} -m procshare ls; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "250", "-y", "300", command],
                   check=True)  # fmt: skip
    try:
        # with history: a long listing (other tests' live segments) scrolls the rule off
        screen = _until(session, lambda s: name in s, history=True)
        assert "\u2500" in screen and "-----" not in screen  # rich's rule, not the plain dashes
        (row,) = [ln.split() for ln in screen.splitlines() if name in ln]
        assert row[:2] == [name, "counter"] and "live" in row
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    piped = subprocess.run([sys.executable, "-m", "procshare", "ls"], capture_output=True,
                           text=True, timeout=60, check=True).stdout  # fmt: skip
    assert "\u2500" not in piped and "\x1b[" not in piped and "-----" in piped
    counter.unlink()
