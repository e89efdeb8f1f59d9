"""``procshare bench --plot FILE.png``: one panel per section, operations per second on a
log scale, procshare's bars beside each peer's (matplotlib, from the bench extra)."""

from __future__ import annotations

from typing import Any

TITLES = {
    "counters": "Increments of one shared count",
    "locks": "Lock acquire + release pairs",
    "queues": "Messages through a queue",
    "dicts": "Shared dict and list",
    "dict_incr": "Dict incr on one hot key",
    "lists": "Lists that move elements (calls per second)",
    "managers": "Managers: the same calls",
    "actors": "Actors",
    "latency": "Wake-up latency (round trips per second)",
    "objects": "Many small objects: made per second",
    "scaling": "Scaling: N processes at once (totals)",
    "redis": "Redis: procshare beside redis-py",
}


def series(section: str, raw: Any) -> list[tuple[str, str, float]]:
    """A section's figures as (implementation, what was measured, operations per second)."""
    if section in ("counters", "locks", "dict_incr"):
        return [(" ".join(r.case.split()), f"{r.procs} proc", r.ops_per_s) for r in raw]
    if section in ("queues", "dicts", "actors"):
        rows, _notes = raw
        return [(label, what, rate) for label, what, rate in rows]
    if section == "managers":
        return [row for op, ps, mp in raw
                for row in (("procshare", op, ps), ("multiprocessing", op, mp))]  # fmt: skip
    if section == "redis":
        from .redis import plotted

        return plotted(raw)
    if section == "lists":
        rows, _notes = raw
        return [(label, op, 1 / seconds) for label, op, seconds in rows]
    if section == "objects":
        rows, _notes = raw
        return [(label, "made", rate) for label, _count, rate, _size, _maps in rows]
    if section == "latency":
        return [(" ".join(case.split()), "round trip", 1 / seconds) for case, seconds in raw]
    if section == "scaling":
        rows, _notes = raw
        return [(r.name, f"{r.operation}, {p} procs", rate)
                for r in rows for p, rate in sorted(r.rates.items())]  # fmt: skip
    return []


def available() -> str | None:
    """None if matplotlib can be imported, else what to install."""
    try:
        import matplotlib  # noqa: F401  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "--plot needs matplotlib: pip install 'procshare[bench]'"
    return None


def plot(figures: dict[str, Any], path: str) -> None:
    """Write the figures of every section that ran to path (PNG, SVG or PDF by its suffix)."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    panels = [(name, rows) for name, raw in figures.items() if (rows := series(name, raw))]
    heights = [1 + 0.22 * len(rows) for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})  # fmt: skip
    for ax, (name, rows) in zip(axes[:, 0], panels, strict=True):
        colours = ["tab:blue" if label.startswith("procshare") else "tab:gray"
                   for label, _, _ in rows]  # fmt: skip
        rates = [rate for _, _, rate in rows]
        ax.barh(range(len(rows)), rates, color=colours)
        ax.set_xlim(left=min(rates) / 3)  # the slowest bar shows, and panels read alike
        ax.set_yticks(range(len(rows)), [f"{label} | {what}" for label, what, _ in rows],
                      fontsize=7)  # fmt: skip
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title(TITLES.get(name, name), fontsize=10, loc="left")
        ax.set_xlabel("operations per second (log scale; blue: procshare)", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
