"""One table style for every command: titled, aligned, ratios against one named baseline.

Every table that compares speeds has the column ``vs baseline``: the row's speed
over the baseline row's (more than 1x is faster), and a caption that names the
baseline.  In a terminal the table is drawn with rich; anywhere else (a pipe, a
file, a test) it is plain aligned text with the same columns, so scripts can
read it and ``--json`` gives the figures themselves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

RATIO = "vs baseline"


def ratio(x: float) -> str:
    """A ratio as a reader takes it in: 3 significant digits, or 1/N below 0.01."""
    if x >= 100:
        return f"{x:,.0f}x"
    if x >= 0.01:
        return f"{x:.3g}x"
    return f"1/{1 / x:,.0f}x" if x > 0 else "0x"


def speedup(rate: float | None, base: float | None) -> str:
    """The ratio cell for a row of speed rate against the baseline's; "-" where either is
    missing."""
    return ratio(rate / base) if rate and base else "-"


@dataclass
class Table:
    """A titled table: the first `text` columns are text (left-aligned), the rest figures."""

    title: str
    columns: tuple[str, ...]
    text: int = 1
    baseline: str | None = None  # what the RATIO column compares with
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(tuple(str(c) for c in cells))

    def caption(self) -> str | None:
        if self.baseline is None:
            return None
        return f"{RATIO}: speed relative to {self.baseline} (above 1x is faster)"

    def plain(self) -> str:
        """The table as aligned text, its title above and its caption and notes below."""
        grid = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in grid) for i in range(len(self.columns))]

        def line(row: tuple[str, ...]) -> str:
            cells = [
                c.ljust(w) if i < self.text else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(cells).rstrip()

        out = [self.title, "", line(self.columns), "  ".join("-" * w for w in widths)]
        out += [line(row) for row in self.rows]
        caption = self.caption()
        return "\n".join(out + ([caption] if caption else []) + self.notes)


def show(table: Table) -> None:
    """Print the table: drawn with rich in a terminal, as plain text elsewhere."""
    if not sys.stdout.isatty():
        print(f"\n{table.plain()}")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    drawn = RichTable(
        title=table.title,
        title_justify="left",
        title_style="bold",
        caption=table.caption(),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for i, name in enumerate(table.columns):
        # the first column names the row: folded onto more lines when narrow, never cut
        drawn.add_column(
            name,
            justify="left" if i < table.text else "right",
            overflow="fold" if i == 0 else "ellipsis",
            no_wrap=i > 0,
        )
    for row in table.rows:
        drawn.add_row(*row)
    console = Console(highlight=False)
    console.print()
    console.print(drawn)
    for note in table.notes:
        console.print(note, markup=False)
