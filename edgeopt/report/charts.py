"""Charts as inline SVG, drawn here in Python: no JavaScript library, nothing fetched when the page is viewed.

Every text that reaches the markup goes through `esc` (labels come from models, paths and profiles).
Values that are None or NaN are never plotted; the caller says "not measured" for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit


def esc(text: object) -> str:
    """Text for HTML element content or a quoted attribute."""
    return escape(str(text), quote=True)


def safe_href(href: str | None) -> str | None:
    """A link target, or None for one that could run script (javascript:, data:, vbscript:, ...)."""
    if not href:
        return None
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return None
    return href if scheme in ("", "http", "https", "file") else None


def finite(v: float | None) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def fmt(v: float | None) -> str:
    """A number as an axis or a cell shows it: 3 significant digits, k/M above 10,000; "-" when not measured."""
    if v is None or not finite(v):
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.3g}"


@dataclass(frozen=True)
class ScatterPoint:
    """One trial on the two main objectives; `href` links its report (relative to the page)."""

    x: float
    y: float
    label: str
    href: str | None
    on_front: bool
    feasible: bool


@dataclass(frozen=True)
class Scale:
    """Data interval [lo, hi] onto pixels [a, b] (b < a for a y axis)."""

    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, v: float) -> float:
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def span(values: Sequence[float]) -> tuple[float, float]:
    """The plotted interval of some finite values, padded 6% each side; a zero range is widened around it."""
    vals = [v for v in values if finite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) inside [lo, hi]."""
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    n = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(max(0, n))]


def _axis_span(vals: Sequence[float], budget: float | None, name: str, notes: list[str]) -> tuple[float, float]:
    """The axis interval; a budget widens it only when it stays near the data (else the points would be
    squashed), and a note says where it is."""
    lo, hi = span(vals)
    if budget is None or not finite(budget):
        return lo, hi
    if not vals or lo - 0.5 * (hi - lo) <= budget <= hi + 0.5 * (hi - lo):
        return span([*vals, budget])
    notes.append(f"the budget on {name} ({fmt(budget)}) lies beyond the plotted range")
    return lo, hi


W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 20, 58


def scatter_svg(points: Sequence[ScatterPoint], x_label: str, y_label: str,
                x_budget: float | None, y_budget: float | None) -> tuple[str, list[str]]:
    """The scatter of every plottable point, the front joined by a step line, budgets dashed.

    Returns the <svg> and notes for what could not be drawn (budgets beyond the chart).
    """
    shown = [p for p in points if finite(p.x) and finite(p.y)]
    xs, ys = [p.x for p in shown], [p.y for p in shown]
    notes: list[str] = []
    data_x = _axis_span(xs, x_budget, x_label, notes)
    data_y = _axis_span(ys, y_budget, y_label, notes)
    sx = Scale(data_x[0], data_x[1], LEFT, W - RIGHT)
    sy = Scale(data_y[0], data_y[1], H - BOTTOM, TOP)
    out = [f'<svg class="chart scatter" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(y_label)} against '
           f'{esc(x_label)}" xmlns="http://www.w3.org/2000/svg">',
           f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}"/>']
    out += _axes(sx, sy, x_label, y_label)
    out += _budget_lines(sx, sy, x_budget, y_budget)
    front = sorted((p for p in shown if p.on_front), key=lambda p: (p.x, p.y))
    if front:
        d = f"M{sx(front[0].x):.1f},{sy(front[0].y):.1f}" + "".join(
            f" H{sx(p.x):.1f} V{sy(p.y):.1f}" for p in front[1:])
        out.append(f'<path class="front-line" d="{d}"/>')
    for p in sorted(shown, key=lambda p: p.on_front):  # the front on top
        cls = " ".join(c for c, on in (("pt", True), ("front", p.on_front), ("infeasible", not p.feasible)) if on)
        tip = f"{p.label}\n{x_label}: {fmt(p.x)}\n{y_label}: {fmt(p.y)}" + (
            "" if p.feasible else "\nover budget") + ("\non the Pareto front" if p.on_front else "")
        circle = (f'<circle class="{cls}" cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{6 if p.on_front else 4.5}">'
                  f"<title>{esc(tip)}</title></circle>")
        href = safe_href(p.href)
        out.append(f'<a href="{esc(href)}">{circle}</a>' if href else circle)
    if not shown:
        out.append(f'<text class="empty" x="{(LEFT + W - RIGHT) / 2}" y="{(TOP + H - BOTTOM) / 2}" '
                   'text-anchor="middle">no trial measured on both objectives</text>')
    out.append("</svg>")
    return "\n".join(out), notes


def _axes(sx: Scale, sy: Scale, x_label: str, y_label: str) -> list[str]:
    out = []
    for t in nice_ticks(sx.lo, sx.hi):
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{esc(fmt(t))}</text>')
    for t in nice_ticks(sy.lo, sy.hi):
        y = sy(t)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt(t))}</text>')
    out.append(f'<text class="axis-label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 14}" text-anchor="middle">'
               f"{esc(x_label)}</text>")
    cy = (TOP + H - BOTTOM) / 2
    out.append(f'<text class="axis-label" x="18" y="{cy}" text-anchor="middle" transform="rotate(-90 18 {cy})">'
               f"{esc(y_label)}</text>")
    return out


def _budget_lines(sx: Scale, sy: Scale, x_budget: float | None, y_budget: float | None) -> list[str]:
    """Dashed lines at the budgets; the side past a budget (over the limit) lightly shaded."""
    shade, out = [], []
    if x_budget is not None and finite(x_budget) and sx.lo <= x_budget <= sx.hi:
        x = sx(x_budget)
        shade.append(f'<rect class="over" x="{x:.1f}" y="{TOP}" width="{W - RIGHT - x:.1f}" height="{H - TOP - BOTTOM}"/>')
        out.append(f'<line class="budget" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}"/>'
                   f'<text class="budget-label" x="{x - 4:.1f}" y="{TOP + 14}" text-anchor="end">'
                   f"budget {esc(fmt(x_budget))}</text>")
    if y_budget is not None and finite(y_budget) and sy.lo <= y_budget <= sy.hi:
        y = sy(y_budget)
        shade.append(f'<rect class="over" x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{y - TOP:.1f}"/>')
        out.append(f'<line class="budget" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>'
                   f'<text class="budget-label" x="{W - RIGHT - 4}" y="{y - 5:.1f}" text-anchor="end">'
                   f"budget {esc(fmt(y_budget))}</text>")
    return shade + out


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: drawn as "not measured"
    text: str  # the figure written after the bar
    kind: str = ""  # CSS class: "", "opt", "fail"


def bars_svg(bars: Sequence[Bar], limit: float | None = None) -> str:
    """Horizontal bars on one shared linear scale starting at zero; `limit` draws a dashed line."""
    row, label_w, text_w = 30, 170, 250
    vals = [b.value for b in bars if finite(b.value) and b.value is not None and b.value >= 0]
    top = max([*vals, limit if finite(limit) and limit is not None else 0.0, 0.0]) or 1.0
    w, h = W, row * len(bars) + 12
    sx = Scale(0.0, top * 1.04, label_w, w - text_w)
    out = [f'<svg class="chart bars" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">']
    for i, b in enumerate(bars):
        y = 6 + i * row
        out.append(f'<text class="bar-label" x="{label_w - 8}" y="{y + 17}" text-anchor="end">{esc(b.label)}</text>')
        if finite(b.value) and b.value is not None and b.value >= 0:
            x2 = sx(b.value)
            out.append(f'<rect class="bar {esc(b.kind)}" x="{label_w}" y="{y + 4}" width="{max(1.0, x2 - label_w):.1f}" '
                       f'height="{row - 10}"/><text class="bar-text" x="{x2 + 6:.1f}" y="{y + 17}">{esc(b.text)}</text>')
        else:
            out.append(f'<text class="bar-text na" x="{label_w + 4}" y="{y + 17}">{esc(b.text or "not measured")}</text>')
    if finite(limit) and limit is not None:
        x = sx(limit)
        out.append(f'<line class="budget" x1="{x:.1f}" y1="2" x2="{x:.1f}" y2="{h - 2}"/>')
    out.append("</svg>")
    return "\n".join(out)


@dataclass(frozen=True)
class Spread:
    """A latency distribution as the report has it (ms)."""

    label: str
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float


def spread_svg(spreads: Sequence[Spread]) -> str:
    """One horizontal box per variant: whisker min..max, box p50..p90, tick at p99, diamond at the mean."""
    row, label_w = 54, 130
    hi = max((s.max for s in spreads), default=1.0) or 1.0
    h = row * len(spreads) + 40
    sx = Scale(0.0, hi * 1.05, label_w, W - RIGHT)
    out = [f'<svg class="chart spread" viewBox="0 0 {W} {h}" xmlns="http://www.w3.org/2000/svg">']
    for t in nice_ticks(sx.lo, sx.hi):
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{h - 30}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{h - 14}" text-anchor="middle">{esc(fmt(t))} ms</text>')
    for i, s in enumerate(spreads):
        y = 10 + i * row
        mid = y + 18
        out.append(f'<text class="bar-label" x="{label_w - 10}" y="{mid + 5}" text-anchor="end">{esc(s.label)}</text>'
                   f'<line class="whisker" x1="{sx(s.min):.1f}" y1="{mid}" x2="{sx(s.max):.1f}" y2="{mid}"/>'
                   f'<rect class="box" x="{sx(s.p50):.1f}" y="{mid - 10}" width="{max(1.5, sx(s.p90) - sx(s.p50)):.1f}" '
                   f'height="20"/>'
                   f'<line class="p50" x1="{sx(s.p50):.1f}" y1="{mid - 12}" x2="{sx(s.p50):.1f}" y2="{mid + 12}"/>'
                   f'<line class="p99" x1="{sx(s.p99):.1f}" y1="{mid - 8}" x2="{sx(s.p99):.1f}" y2="{mid + 8}"/>')
        mx = sx(s.mean)
        out.append(f'<path class="mean" d="M{mx:.1f},{mid - 5} l5,5 l-5,5 l-5,-5 z"/>'
                   f'<text class="bar-text" x="{sx(s.p50):.1f}" y="{mid + 26}" text-anchor="middle">'
                   f"p50 {esc(fmt(s.p50))}</text>")
    out.append("</svg>")
    return "\n".join(out)
