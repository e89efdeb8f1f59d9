"""The ``procshare`` command: the article's demo, the benchmarks, and segment housekeeping."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

#: The sections of ``procshare bench``, in the order they run.
SECTIONS = ("counters", "locks", "queues", "dicts", "managers", "actors", "latency", "scaling")


def _procs(text: str) -> list[int]:
    """--procs: comma-separated process counts, each 1 to 256."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or not all(1 <= n <= 256 for n in counts):
        raise argparse.ArgumentTypeError("process counts must be 1 to 256")
    return sorted(set(counts))


def main(argv: Sequence[str] | None = None) -> int:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="procshare", description=__doc__)
    parser.add_argument("--version", action="version", version=f"procshare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="replay the article's shared-counter experiment")
    demo.add_argument("--procs", type=int, default=99, help="processes (default 99)")
    demo.add_argument("--incs", type=int, default=1, help="increments per process (default 1)")
    demo.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default=None)
    demo.add_argument(
        "--messages", type=int, default=20_000, help="messages per producer (default 20000)"
    )

    bench = sub.add_parser("bench", help="measure procshare against multiprocessing")
    bench.add_argument("--iterations", type=int, default=1_000_000)
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--quick", action="store_true", help="tiny run, to check it works")
    bench.add_argument(
        "--only",
        choices=list(SECTIONS),
        default=None,
    )
    bench.add_argument(
        "--procs",
        type=_procs,
        default=None,
        metavar="N,N,...",
        help="add the scaling view at these process counts (e.g. 1,2,4,8,16)",
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=0.5,
        help="length of each fixed-time loop of the scaling view (default 0.5)",
    )

    sub.add_parser("ls", help="list procshare segments on this machine")
    rm = sub.add_parser("rm", help="remove segments by name")
    rm.add_argument("names", nargs="*", help="names to unlink")
    rm.add_argument(
        "--dead", action="store_true",
        help="also remove anonymous segments whose creator is gone, and damaged segments",
    )  # fmt: skip

    args = parser.parse_args(argv)
    if args.command in ("ls", "rm"):
        from . import segments

        if args.command == "ls":
            return segments.main_ls()
        if not args.names and not args.dead:
            parser.error("rm needs names or --dead")
        return segments.main_rm(args.names, args.dead)
    if args.command == "demo":
        if args.procs < 1 or args.incs < 0 or args.messages < 0:
            parser.error("--procs must be >= 1, --incs and --messages >= 0")
        from . import demo as _demo

        return _demo.main(args.procs, args.incs, args.start_method, args.messages)
    from . import bench as _bench

    if args.quick:
        args.iterations, args.repeats = 2_000, 1
    if args.iterations < 1 or args.repeats < 1:
        parser.error("--iterations and --repeats must be >= 1")
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be more than 0 and at most 60")
    procs = args.procs or ([1, 2] if args.only == "scaling" else [])
    if args.quick:
        args.seconds = 0.05
    return _bench.main(args.iterations, args.repeats, args.only, procs, args.seconds)
