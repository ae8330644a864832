"""The rich table every human rendering uses: left-aligned first column, numbers formatted one way.

Lives here, below cli/, so report and benchmark renderers can build tables; the CLI sink prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t


def fmt(v: Any) -> str:
    """One cell: '-' for None, 4 significant digits for floats, thousands separators for ints."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
