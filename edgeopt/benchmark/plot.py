"""Latency distribution per model as a PNG/SVG/PDF (matplotlib, the optional `plot` extra).

One panel per result with its own y axis, so a 0.1 ms model next to a 10 ms one stays readable; each
panel shows the runs from the fastest to p99 (the slowest 1 %, usually scheduler noise, would set the
scale) and marks p50.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Any

from edgeopt.benchmark.protocol import BenchResult
from edgeopt.benchmark.results import BenchReport
from edgeopt.errors import OutputError, RuntimeUnavailableError

MAX_COLUMNS = 4  # panels per row
PAD = 0.05  # y margin as a fraction of the drawn range (fastest run .. p99)


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError:
        msg = "--plot needs matplotlib; install it with: pip install 'edgeopt[plot]'"
        raise RuntimeUnavailableError(msg) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def y_range(r: BenchResult) -> tuple[float, float]:
    """The panel's y limits: from just below the fastest run to just above p99 (never past p99 * 1.1)."""
    lo, hi = r.latency.min, r.latency.p99
    pad = PAD * (hi - lo) if hi > lo else PAD * max(hi, 1e-6)
    return max(0.0, lo - pad), hi + pad


def _panel(ax: Any, r: BenchResult) -> None:
    p50, p99 = r.latency.p50, r.latency.p99
    shown = [s for s in r.samples_ms if s <= p99] or list(r.samples_ms)
    if len(set(shown)) > 1:  # a violin needs spread
        ax.violinplot([shown], positions=[1], showextrema=False, widths=0.8)
    ax.boxplot([shown], positions=[1], widths=0.2, showfliers=False, medianprops={"linewidth": 0})
    ax.axhline(p50, color="tab:red", linewidth=1.2)
    ax.set_ylim(*y_range(r))
    ax.set_xticks([])
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title("\n".join(textwrap.wrap(r.label(), 28)), fontsize=9)
    hidden = len(r.samples_ms) - len(shown)
    ax.set_xlabel(f"red line: p50 {p50:.4g} ms\np99 {p99:.4g} ms, {r.latency.runs:,} runs"
                  + (f"\n{hidden:,} slower runs not drawn" if hidden else ""), fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def latency_figure(report: BenchReport) -> Any:
    """The matplotlib Figure: one labelled panel per result that carries per-run samples."""
    plt = _pyplot()
    results = [r for r in report.results if r.samples_ms]
    if not results:
        msg = "--plot needs per-run samples; these results carry none"
        raise OutputError(msg)
    cols = min(len(results), MAX_COLUMNS)
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 0.4, 3.9 * rows), squeeze=False)
    flat = [a for row in axes for a in row]
    for ax, r in zip(flat, results, strict=False):
        _panel(ax, r)
    for ax in flat[len(results):]:
        fig.delaxes(ax)
    fig.suptitle("edgeopt bench: latency distribution (fastest run to p99, own scale per model)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_latency(report: BenchReport, path: Path) -> Path:
    """`latency_figure` written atomically to `path` (.png, .svg or .pdf)."""
    from edgeopt.atomic import write_bytes_atomic

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        msg = f"--plot {path}: give a .png, .svg or .pdf file name"
        raise OutputError(msg)
    plt = _pyplot()
    fig = latency_figure(report)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120)
    plt.close(fig)
    try:
        return write_bytes_atomic(path, buf.getvalue())
    except OSError as exc:
        msg = f"cannot write {path}: {exc.strerror or exc}"
        raise OutputError(msg) from None
