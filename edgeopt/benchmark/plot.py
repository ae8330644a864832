"""Latency distribution per model as a PNG/SVG/PDF (matplotlib, the optional `plot` extra)."""

from __future__ import annotations

from pathlib import Path

from edgeopt.benchmark.results import BenchReport
from edgeopt.errors import OutputError, RuntimeUnavailableError


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError:
        raise RuntimeUnavailableError("--plot needs matplotlib; install it with: pip install 'edgeopt[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(report: BenchReport, path: Path) -> Path:
    """Violin + box of the per-run latencies of each result, written atomically to `path`."""
    from edgeopt.atomic import write_bytes_atomic

    plt = _pyplot()
    results = [r for r in report.results if r.samples_ms]
    if not results:
        raise OutputError("--plot needs per-run samples; these results carry none")
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise OutputError(f"--plot {path}: give a .png, .svg or .pdf file name")
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(results) + 2), 4.0))
    data = [list(r.samples_ms) for r in results]
    pos = list(range(1, len(data) + 1))
    ax.violinplot(data, positions=pos, showextrema=False)
    ax.boxplot(data, positions=pos, widths=0.15, showfliers=False)
    ax.set_xticks(pos, [r.label() for r in results], rotation=20, ha="right")
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title("edgeopt bench: latency distribution")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120)
    plt.close(fig)
    try:
        return write_bytes_atomic(path, buf.getvalue())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
