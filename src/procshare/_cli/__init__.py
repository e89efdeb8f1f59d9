"""The ``procshare`` command: the article's demo, the benchmarks, and segment housekeeping."""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from multiprocessing import util

#: The sections of ``procshare bench``, in the order they run.
SECTIONS = (
    "counters",
    "locks",
    "queues",
    "dicts",
    "lists",
    "managers",
    "actors",
    "latency",
    "objects",
    "scaling",
    "redis",
)  # redis: only when asked for


def _procs(text: str) -> list[int]:
    """--procs: comma-separated process counts, each 1 to 256."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or not all(1 <= n <= 256 for n in counts):
        raise argparse.ArgumentTypeError("process counts must be 1 to 256")
    return sorted(set(counts))


def _count(low: int, high: int) -> Callable[[str], int]:
    """An argument type: an integer from low to high."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be {low:,} to {high:,}, not {n:,}")
        return n

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="procshare",
        description="Share variables between Python processes. demo replays the "
        "multiprocessing article's scenarios, bench measures procshare beside "
        "multiprocessing and its peers, ls / inspect / top / rm look after segments.",
    )
    parser.add_argument("--version", action="version", version=f"procshare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="replay the article's three scenarios: the shared list, the shared counter, "
        "and message passing",
    )
    demo.add_argument("--procs", type=_count(1, 1_000), default=99,
                      help="counter processes, 1 to 1000 (default 99)")  # fmt: skip
    demo.add_argument("--incs", type=_count(0, 10_000_000), default=1,
                      help="increments per counter process, 0 to 10**7 (default 1)")  # fmt: skip
    demo.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default=None,
                      help="how processes start (default: the platform's)")  # fmt: skip
    demo.add_argument("--messages", type=_count(0, 10_000_000), default=20_000,
                      help="messages per producer, 0 to 10,000,000 (default 20000)")  # fmt: skip
    demo.add_argument("--json", action="store_true",
                      help="print the results as one JSON object instead of tables")  # fmt: skip

    bench = sub.add_parser("bench", help="measure procshare against multiprocessing")
    bench.add_argument("--iterations", type=_count(1, 1_000_000_000), default=1_000_000,
                       help="operations per process per loop (default 10**6); the lists "
                           "section's items, 1,000 to 10**6")  # fmt: skip
    bench.add_argument("--repeats", type=_count(1, 1_000), default=5,
                       help="runs of each case; the median is reported (default 5)")  # fmt: skip
    bench.add_argument("--quick", action="store_true", help="tiny run, to check it works")
    bench.add_argument(
        "--only",
        choices=list(SECTIONS),
        default=None,
        help="run one section only",
    )
    bench.add_argument(
        "--procs",
        type=_procs,
        default=None,
        metavar="N,N,...",
        help="add the scaling view at these process counts (e.g. 1,2,4,8,16)",
    )
    bench.add_argument("--json", metavar="FILE", default=None,
                       help="also write the raw figures, as JSON, to FILE")  # fmt: skip
    bench.add_argument("--plot", metavar="FILE.png", default=None,
                       help="also draw the figures (matplotlib, the bench extra)")  # fmt: skip
    bench.add_argument(
        "--seconds",
        type=float,
        default=0.5,
        help="length of each fixed-time loop of the scaling view (default 0.5)",
    )

    ls = sub.add_parser("ls", help="list procshare segments on this machine")
    ls.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    inspect = sub.add_parser(
        "inspect", help="what a segment is and its object's live state, read without waiting"
    )
    inspect.add_argument("name", help="the object's name (as procshare ls shows it)")
    inspect.add_argument(
        "--limit", type=_count(0, 10_000), default=10,
        help="items of a Dict, List or Array to preview (default 10)",
    )  # fmt: skip
    inspect.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    top = sub.add_parser("top", help="this user's objects, their state and rates, refreshed")
    top.add_argument("--interval", type=float, default=1.0,
                     help="seconds between refreshes, 0.1 to 60 (default 1)")  # fmt: skip
    top.add_argument("--sort", choices=["name", "kind", "size", "rate"], default="name")
    top.add_argument("--once", action="store_true", help="print one table and exit")
    top.add_argument("pattern", nargs="?", default="*",
                     help="only names matching this shell pattern (default: all)")  # fmt: skip
    rm = sub.add_parser("rm", help="remove segments by name")
    rm.add_argument("names", nargs="*", help="names to unlink")
    rm.add_argument(
        "--dead", action="store_true",
        help="also remove anonymous segments whose creator is gone, and damaged segments",
    )  # fmt: skip

    args = parser.parse_args(argv)
    if args.command == "top":
        if not 0.1 <= args.interval <= 60:
            parser.error("--interval must be 0.1 to 60 seconds")
        from . import top as _top

        return _top.main(args.once, args.interval, args.sort, args.pattern)
    if args.command == "inspect":
        from . import inspect as _inspect

        return _inspect.main(args.name, args.limit, args.json)
    if args.command in ("ls", "rm"):
        from . import segments

        if args.command == "ls":
            return segments.main_ls(args.json)
        if not args.names and not args.dead:
            parser.error("rm needs names or --dead")
        return segments.main_rm(args.names, args.dead)
    if args.command == "bench":
        if args.quick:
            args.iterations, args.repeats = 2_000, 1
        if not 0 < args.seconds <= 60:
            parser.error("--seconds must be more than 0 and at most 60")
        if args.plot is not None:
            from .bench.plot import available

            if (missing := available()) is not None:
                parser.error(missing)
    return _interruptible(args)


def _interruptible(args: argparse.Namespace) -> int:
    """Run demo or bench so that Ctrl-C stops it cleanly: the worker processes ignore
    SIGINT (the terminal sends it to them too) and are stopped by this process, which
    then exits 130 without a traceback, its segments removed by its normal exit."""
    util.register_after_fork(_ignore_sigint, _ignore_sigint)
    signal.signal(signal.SIGINT, _stop_children)
    try:
        if args.command == "demo":
            from . import demo as _demo

            return _demo.main(args.procs, args.incs, args.start_method, args.messages, args.json)
        from . import bench as _bench

        procs = args.procs or ([1, 2] if args.only == "scaling" else [])
        seconds = 0.05 if args.quick else args.seconds
        return _bench.main(args.iterations, args.repeats, args.only, procs, seconds, args.json,
                           args.plot)  # fmt: skip
    except KeyboardInterrupt:
        print(f"\nprocshare {args.command}: interrupted", file=sys.stderr)
        return 130


def _ignore_sigint(_: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_children(signum: int, frame: object) -> None:
    """On Ctrl-C: stop every worker and server process first (a server releases what it
    owns on SIGTERM), then unwind this one."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(5)
    raise KeyboardInterrupt
