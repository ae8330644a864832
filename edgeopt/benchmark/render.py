"""Benchmark results as table rows, CSV and Markdown (the console table is drawn by the CLI sink)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from edgeopt.benchmark.compare import Comparison
from edgeopt.benchmark.results import BenchReport
from edgeopt.report.markdown import cell, text

COLUMNS = ("model", "device", "runtime", "threads", "delegate", "init_ms", "probe_ms", "first_ms", "p50", "p90", "p95",
           "p99", "mean", "std", "min", "max", "iqr", "runs", "throughput", "cpu_ms", "cpu_per_wall", "cores", "load_1m",
           "peak_rss_mb", "rss_delta_mb", "ratio_p50", "input_shapes", "emulated")
# Ratios everywhere are candidate / baseline (optimized / baseline in `build`): < 1 is faster.
RATIO_HEADER = "p50 ratio (this/first)"
HEADERS = ("model", "device", "runtime", "threads", "delegate", "init ms", "probe ms", "first ms", "p50", "p90", "p95",
           "p99", "mean", "std", "min", "max", "IQR", "runs", "inf/s", "CPU ms", "CPU/wall", "cores", "load 1m",
           "peak RSS MB", "ΔRSS MB", RATIO_HEADER, "input shapes", "emulated")
# CPU ms: process CPU time per invoke (all threads), beside the wall-time statistics; CPU/wall about the cores
# kept busy; load 1m: the host's 1-minute load average while measuring (above `cores`: other work competed).
COMPARE_HEADERS = ("old", "new", "old p50 ms", "new p50 ms", "p50 ratio (new/old)", "p90 ratio (new/old)",
                   "p99 ratio (new/old)", "mean ratio (new/old)", "notes")


def rows(report: BenchReport) -> list[list[Any]]:
    out = []
    for r, q in zip(report.results, report.ratios, strict=True):
        s = r.latency
        out.append([r.name, r.device, r.runtime, r.threads, r.delegate, r.init_ms, r.probe_ms, r.first_ms, s.p50, s.p90, s.p95, s.p99,
                    s.mean, s.std, s.min, s.max, s.iqr, s.runs, s.throughput, r.cpu_ms, r.cpu_per_wall, r.cores,
                    r.load_1m, r.peak_rss_mb, r.rss_delta_mb, None if q is None else q["p50"], r.input_shapes or None,
                    "yes" if r.emulated else "no"])
    return out


def compare_rows(comparisons: Sequence[Comparison]) -> list[list[Any]]:
    return [[c.old.label(), c.new.label(), c.old.latency.p50, c.new.latency.p50, c.ratios["p50"], c.ratios["p90"],
             c.ratios["p99"], c.ratios["mean"], "; ".join(c.notes) or None] for c in comparisons]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula (OWASP)


def _cell(v: Any) -> str:
    """A CSV cell; text (a model or folder name) that a spreadsheet would run as a formula gets a leading `'`
    (OWASP's CSV injection advice), numbers stay numbers."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, int):
        return str(v)
    text = str(v)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(header: Sequence[str], table: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in table:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()


def _md(v: Any) -> str:
    """A Markdown table cell: numbers as they are, text (model names, hosts, shapes) as a code span."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return str(v)
    return cell(v)


def to_markdown(header: Sequence[str], table: Sequence[Sequence[Any]], fingerprints: Sequence[str] = (),
                notes: Sequence[str] = ()) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in table]
    if fingerprints or notes:
        lines.append("")
        lines += [f"- {text(f)}" for f in fingerprints] + [f"- warning: {text(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def warnings(report: BenchReport) -> list[str]:
    """Each distinct reason a measurement is biased (load above the cores, threads above the cores), with the
    models it applies to."""
    seen: dict[str, list[str]] = {}
    for r in report.results:
        for w in r.warnings():
            seen.setdefault(w, []).append(r.label())
    return [f"{w} ({', '.join(labels)})" for w, labels in seen.items()]


def fingerprints(report: BenchReport) -> list[str]:
    """One line per distinct machine + runtime configuration."""
    seen: dict[str, None] = {}
    for r in report.results:
        if r.fingerprint:
            seen.setdefault(r.fingerprint.describe(), None)
    return list(seen)
