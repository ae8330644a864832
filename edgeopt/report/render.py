"""Render a Report as Markdown and as a rich console table."""

from __future__ import annotations

from rich.console import Console

from edgeopt.cli.output import table
from edgeopt.report.schema import Report, Variant


def _row(label: str, v: Variant) -> list[object]:
    acc = v.accuracy
    lat = v.latency_ms
    return [label, v.artifact.scheme, v.artifact.bytes,
            None if acc is None else (acc.value if acc.value is not None else None),
            None if acc is None else acc.agreement, None if acc is None else acc.snr_db,
            None if lat is None else lat.p50, None if lat is None else lat.p90]


COLUMNS = ["", "scheme", "bytes", "top1%", "agree%", "SNR dB", "p50 ms", "p90 ms"]


def to_console(report: Report, console: Console) -> None:
    rows = [_row("baseline", report.baseline), _row("optimized", report.optimized)]
    r = report.ratios
    rows.append(["ratio", "", r.size, None, None, None, r.latency_p50, None])
    console.print(table(f"{report.input.path} -> {report.target.name}", COLUMNS, rows))
    console.print(f"baseline: {report.baseline.artifact.path}  optimized: {report.optimized.artifact.path}", markup=False)
    if report.budgets:
        console.print(table("budgets", ["budget", "limit", "actual", "unit", "ok"],
                            [[b.name, b.limit, b.actual, b.unit, {True: "ok", False: "FAIL", None: "unchecked"}[b.ok]]
                             for b in report.budgets]))
    for note in report.notes:
        console.print(f"note: {note}", markup=False)


def _md_cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def to_markdown(report: Report) -> str:
    lines = [f"# edgeopt report: {report.input.path} -> {report.target.name}", "",
             f"edgeopt {report.tool.version}, profile sha256 `{report.target.profile_sha256[:12]}`, "
             f"input params {_md_cell(report.input.params)}, MACs {_md_cell(report.input.macs)}, "
             f"calibration: {report.calibration.source} ({report.calibration.samples} samples), "
             f"eval: {report.eval_data or 'none'}, build {report.build_seconds:.1f} s.", "",
             "| " + " | ".join(c or "variant" for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for label, v in (("baseline", report.baseline), ("optimized", report.optimized)):
        lines.append("| " + " | ".join(_md_cell(c) for c in _row(label, v)) + " |")
    r = report.ratios
    lines.append(f"| ratio (optimized / baseline) |  | {r.size:.3f} |  |  |  | {_md_cell(r.latency_p50)} |  |")
    if report.budgets:
        lines += ["", "## Budgets", "", "| budget | limit | actual | unit | ok |", "|---|---|---|---|---|"]
        for b in report.budgets:
            lines.append(f"| {b.name} | {_md_cell(b.limit)} | {_md_cell(b.actual)} | {b.unit} | "
                         f"{ {True: 'ok', False: '**FAIL**', None: 'unchecked'}[b.ok] } |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    lines += ["", f"Overall: {'ok' if report.ok else '**FAILED**'}", ""]
    return "\n".join(lines)
