"""Progress of long runs, on stderr: one line per finished step when stderr is not a
terminal (logs, CI), a bar rewritten in place when it is."""

from __future__ import annotations

import sys

BAR = 24  # characters of the bar


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
            filled = BAR * self.count // max(self.total, 1)
            bar = "\u2588" * filled + "\u2591" * (BAR - filled)
            sys.stderr.write(f"\r\x1b[2K{bar} {line}"[:200])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live and self.count:
            sys.stderr.write("\r\x1b[2K")  # the table that follows replaces the line
            sys.stderr.flush()
