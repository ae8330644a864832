"""Render a Report as Markdown and as a rich console table."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from edgeopt.report.schema import Report, Variant
from edgeopt.report.table import table


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
        return f"{int(v):,}" if v.is_integer() and abs(v) >= 1000 else f"{v:.4g}"
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
    lines += _stages_markdown(report.stages)
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    lines += ["", f"Overall: {'ok' if report.ok else '**FAILED**'}", ""]
    return "\n".join(lines)


def _table(columns: list[str], rows: list[list[object]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]


def _stages_markdown(stages: dict[str, Any]) -> list[str]:
    """Optional stages (prune, cluster, partial quantization, MCU) as Markdown sections."""
    out: list[str] = []
    if "composition" in stages:
        c = stages["composition"]
        out += ["", "## Composition", "",
                f"Compression ratio (float bytes / final bytes) {_md_cell(c['compression_ratio'])}, pruning ratio "
                f"(params before / after) {_md_cell(c['pruning_ratio'])}, quantization {c['quantization_bit_ratio']}.", ""]
        out += _table(["after step", "top-1 %"], [[k, v] for k, v in c["accuracy_after"].items()])
    if "prune" in stages:
        p = stages["prune"]
        out += ["", "## Pruning", "",
                f"{p['criterion']}, {p['allocation']}, round_to {p['round_to']}: MACs {p['macs_before']:,} -> "
                f"{p['macs_after']:,} ({100 * p['macs_reduction']:.1f}% fewer), params {p['params_before']:,} -> "
                f"{p['params_after']:,}; top-1 {_md_cell(p['accuracy_before'])} -> {_md_cell(p['accuracy_after_prune'])} "
                f"after pruning -> {_md_cell(p['accuracy_after_finetune'])} after fine-tuning.", ""]
        out += _table(["layers", "channels before", "after"],
                      [[", ".join(g["layers"]), g["channels_before"], g["channels_after"]] for g in p["groups"]])
        out += [f"- left unpruned: {u['layer']} ({u['reason']})" for u in p["unprunable"]]
    if "cluster" in stages:
        c = stages["cluster"]
        out += ["", "## Weight sharing", ""]
        out += _table(["layer", "unique values before", "after"],
                      [[x["layer"], x["unique_before"], x["unique_after"]] for x in c["layers"]])
    if "partial" in stages:
        p = stages["partial"]
        out += ["", "## Partial quantization (accuracy control)", "",
                f"Budget: drop <= {_md_cell(p['max_accuracy_drop'])} points; met: {p['met']}; chosen step {p['chosen']}.", ""]
        out += _table(["step", "scheme", "bytes", "top-1 %", "drop", "p50 ms", "out of int8"],
                      [[s["step"], s["scheme"], s["size_bytes"], s["accuracy"], s["accuracy_drop"], s["latency_p50_ms"],
                        ", ".join(s["layers"]) or "-"] for s in p["steps"]])
    if "mcu" in stages:
        m = stages["mcu"]
        out += ["", "## Microcontroller (TFLite Micro)", ""]
        out += _table(["", "value"], [
            ["ops", ", ".join(m["ops"])], ["tensor arena (exact, measured)", f"{m['arena_bytes']:,} B"],
            ["arena + margin (ARENA_SIZE)", f"{m['arena_with_margin']:,} B"],
            ["flash (model + runtime)", f"{m['flash_bytes']:,} B" + (f" of {m['flash_limit_bytes']:,}" if m["flash_limit_bytes"] else "")],
            ["RAM (arena + I/O)", f"{m['ram_bytes']:,} B" + (f" of {m['ram_limit_bytes']:,}" if m["ram_limit_bytes"] else "")],
            ["TFLM vs LiteRT", m["comparison_note"]],
            ["host TFLM latency (host CPU)", f"{_md_cell(m['host_tflm_latency_ms'])} ms"],
            ["estimated device latency (MACs / MAC/s)", f"{_md_cell(m['estimated_device_latency_ms'])} ms"],
            ["C files", f"{m.get('c_header')}, {m.get('c_source')}"]])
    return out
