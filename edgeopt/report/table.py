"""The table every human rendering uses: never cuts a name or a number, whatever the terminal width.

Lives here, below cli/, so report and benchmark renderers can build tables; the CLI sink prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> FitTable:
    """A table for the human sink that never cuts a name or a number, whatever the terminal width."""
    return FitTable(title, tuple(columns), tuple(tuple(fmt(v) for v in r) for r in rows))


@dataclass(frozen=True)
class FitTable:
    """Rendered at the console's width: one table if every cell fits on one line; else the columns are
    stacked in several tables (each repeating the first column, which names the row) that fit, wrapping
    cells at spaces if they must; else one block per row (`column: value` lines)."""

    title: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def _table(self, cols: Sequence[int], title: str | None) -> Table:
        t = Table(title=None if title is None else Text(printable(title), style="italic"), title_justify="left")
        for i in cols:  # Text, not markup: a file named "a[/b].onnx" is shown as it is
            t.add_column(Text(self.columns[i]), justify="left" if i == 0 else "right")
        for r in self.rows:
            t.add_row(*[Text(r[i]) for i in cols])
        return t

    def _groups(self, fits: Callable[[list[int]], bool]) -> list[list[int]] | None:
        """Greedy split of columns 1.. into groups that fit after column 0; None if one column alone does not."""
        groups: list[list[int]] = []
        current = [0]
        for i in range(1, len(self.columns)):
            if fits([*current, i]):
                current.append(i)
            elif len(current) > 1 and fits([0, i]):
                groups.append(current)
                current = [0, i]
            else:
                return None
        groups.append(current)
        return groups

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        wide = options.update_width(1 << 16)

        def natural(cols: list[int]) -> bool:  # every cell on one line
            return Measurement.get(console, wide, self._table(cols, None)).maximum <= width

        def wrapped(cols: list[int]) -> bool:  # cells wrapped at spaces, no word cut
            return Measurement.get(console, wide, self._table(cols, None)).minimum <= width

        every = list(range(len(self.columns)))
        if len(every) == 1:
            groups: list[list[int]] | None = [every] if wrapped(every) else None
        else:
            groups = self._groups(natural) or self._groups(wrapped)
        if groups is None:
            yield from self._records()
            return
        for n, cols in enumerate(groups):
            title = self.title if n == 0 else "(continued)"
            yield self._table(cols, title)

    def _records(self) -> Iterator[Text]:
        if self.title:
            yield Text(self.title, style="italic")
        for r in self.rows:
            yield Text(f"{self.columns[0] or 'row'}: {r[0]}", style="bold")
            for name, value in zip(self.columns[1:], r[1:], strict=True):
                yield Text(f"  {name}: {value}")


def printable(text: str) -> str:
    """Control and unprintable characters (names from corrupt or hostile files) as escapes: output cannot be
    restyled by ANSI codes, cleared, or split into fake lines."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fmt(v: Any) -> str:
    """One cell: '-' for None, 4 significant digits for floats, thousands separators for ints."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return printable(str(v))
