"""The README's screenshots: a search page made from real build reports, and one build's report.html.

    python examples/html_pages.py OUT1 OUT2 ... --page search.html --png docs/search.png --report-png docs/report.png

Each OUT is an `edgeopt build` output folder. The page plots size against accuracy drop (both minimised);
the front is the non-dominated builds. The budgets drawn are the first report's max_model_kb and
max_accuracy_drop unless --size-kb / --drop give others; a build is feasible when it is within the drawn
budgets and every other budget of its report held.
The screenshots are taken with headless Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgeopt.report.html import ScatterPoint, search_page
from edgeopt.report.schema import Report


def _drop(r: Report) -> float:
    a = r.optimized.accuracy
    return float("nan") if a is None or a.drop is None else a.drop


def _feasible(r: Report, x: float, y: float, size_kb: float | None, drop: float | None) -> bool:
    others = all(b.ok is not False for b in r.budgets if b.name not in ("max_model_kb", "max_accuracy_drop"))
    return others and (size_kb is None or x <= size_kb) and (drop is None or y <= drop)


def page_of(outs: list[Path], page: Path, title: str | None = None, size_kb: float | None = None,
            drop: float | None = None) -> str:
    reports = [Report.model_validate_json((o / "report.json").read_text("utf-8")) for o in outs]
    budgets = {b.name: b.limit for b in reports[0].budgets}
    size_kb = budgets.get("max_model_kb") if size_kb is None else size_kb
    drop = budgets.get("max_accuracy_drop") if drop is None else drop
    xy = [(r.optimized.artifact.bytes / 1024, _drop(r)) for r in reports]
    front = [not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in xy) for p in xy]
    ok = [_feasible(r, x, y, size_kb, drop) for r, (x, y) in zip(reports, xy, strict=True)]
    links = [os.path.relpath(o / "report.html", page.parent) for o in outs]
    points = [ScatterPoint(x, y, o.name, link, f, k)
              for (x, y), f, k, o, link in zip(xy, front, ok, outs, links, strict=True)]
    rows = []
    for o, r, f, k in zip(outs, reports, front, ok, strict=True):
        p = r.stages.prune
        lat = r.optimized.latency_ms
        acc = r.optimized.accuracy
        rows.append([o.name, r.optimized.artifact.scheme, "-" if p is None else f"{100 * p.macs_reduction:.0f}%",
                     f"{r.optimized.artifact.bytes / 1024:.1f}", "-" if acc is None or acc.value is None else
                     f"{acc.value:.2f}", f"{_drop(r):.2f}", "-" if lat is None else f"{lat.p50:.3f}",
                     "yes" if f else "", "ok" if k else "over"])
    return search_page(title or f"{reports[0].input.path} -> {reports[0].target.name}", points, "size (KiB)",
                       "accuracy drop (points)", size_kb, drop,
                       ["trial", "scheme", "MACs pruned", "KiB", "top-1 %", "drop", "p50 ms", "front", "budgets"],
                       rows, links)


def screenshot(page: Path, png: Path, height: int) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png.resolve()}", f"--window-size=1200,{height}",
                        "--hide-scrollbars", page.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outs", nargs="+", type=Path)
    ap.add_argument("--page", type=Path, default=Path("search.html"))
    ap.add_argument("--png", type=Path)
    ap.add_argument("--report-png", type=Path, help="screenshot of the first OUT's report.html")
    ap.add_argument("--height", type=int, default=1100)
    ap.add_argument("--title")
    ap.add_argument("--size-kb", type=float, help="size budget drawn (KiB)")
    ap.add_argument("--drop", type=float, help="accuracy-drop budget drawn (points)")
    args = ap.parse_args()
    args.page.write_text(page_of(args.outs, args.page, args.title, args.size_kb, args.drop), "utf-8")
    if args.png:
        screenshot(args.page, args.png, args.height)
    if args.report_png:
        screenshot(args.outs[0] / "report.html", args.report_png, args.height)


if __name__ == "__main__":
    main()
