"""Progress of long runs, on stderr: one line per finished step when stderr is not a
terminal (logs, CI), one line rewritten in place when it is."""

from __future__ import annotations

import sys


class Progress:
    """``with Progress("demo counter", total) as p: ... p.done(label)`` after each step."""

    def __init__(self, title: str, total: int) -> None:
        self.title, self.total, self.count = title, total, 0
        self.live = sys.stderr.isatty()

    def done(self, label: str) -> None:
        """Say that the step label finished."""
        self.count += 1
        line = f"[{self.title} {self.count}/{self.total}] {label}"
        if self.live:
            sys.stderr.write("\r\x1b[2K" + line[:200])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live and self.count:
            sys.stderr.write("\r\x1b[2K")  # the table that follows replaces the line
            sys.stderr.flush()
