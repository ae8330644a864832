"""Self-contained HTML pages: search.html (the trade-off of a search) and report.html (one build).

One file each, inline CSS and server-drawn SVG (edgeopt.report.charts); no script, nothing fetched at view
time. Every string from a model, a path or a profile is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeopt.report import schema as rs
from edgeopt.report.charts import (
    Bar,
    ScatterPoint,
    Spread,
    bars_svg,
    esc,
    finite,
    fmt,
    safe_href,
    scatter_svg,
    spread_svg,
)
from edgeopt.report.render import device_estimate_method, device_estimate_ms, is_mcu, latency_ratio_text

__all__ = ["ScatterPoint", "build_page", "search_page"]

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --accent:#2563eb; --bad:#dc2626; --good:#059669;
        --soft:#f3f4f6; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink);
       margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; overflow-wrap: anywhere; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 12px 0; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; margin: 12px 0; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile .v { font-size: 20px; font-weight: 600; }
.tile .d { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.ok { background: #d1fae5; color: #065f46; } .badge.fail { background: #fee2e2; color: #991b1b; }
.badge.na { background: var(--soft); color: var(--muted); }
table { border-collapse: collapse; width: 100%; background: #fff; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top;
         overflow-wrap: anywhere; }
th { background: var(--soft); font-weight: 600; font-size: 13px; }
table.variants td, table.variants th { white-space: nowrap; overflow-wrap: normal; padding: 5px 7px; font-size: 13px; }
.scroll { overflow-x: auto; }
td.n, th.n { text-align: right; white-space: nowrap; overflow-wrap: normal; }
tr.front td { background: #eff6ff; }
a { color: var(--accent); }
.legend { display: flex; flex-wrap: wrap; gap: 18px; color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
.legend span.sw { display: inline-block; width: 12px; height: 12px; border-radius: 50%; vertical-align: -1px;
                  margin-right: 6px; }
.sw.front { background: var(--accent); } .sw.other { background: #9ca3af; }
.sw.infeasible { background: #fff; border: 2px solid var(--bad); }
.sw.line { width: 22px !important; height: 0 !important; border-radius: 0 !important; border-top: 2px solid var(--accent); }
.sw.budget { width: 22px !important; height: 0 !important; border-radius: 0 !important; border-top: 2px dashed var(--bad); }
.sw.p99 { width: 3px !important; border-radius: 0 !important; background: var(--bad); }
.sw.mean { width: 9px !important; height: 9px !important; border-radius: 0 !important; background: #111827;
           transform: rotate(45deg); }
.sw.whisker { width: 22px !important; height: 0 !important; border-radius: 0 !important; border-top: 2px solid #6b7280; }
.sw.box { border-radius: 2px !important; background: #bfdbfe; border: 1px solid var(--accent); }
.note { color: var(--muted); }
ul.notes li { margin: 3px 0; overflow-wrap: anywhere; }
svg.chart { width: 100%; height: auto; display: block; }
svg .plot { fill: #fff; stroke: var(--line); }
svg .grid { stroke: #f0f0f0; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: #374151; }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .axis-label { font-size: 13px; font-weight: 600; }
svg .pt { fill: #9ca3af; stroke: #fff; stroke-width: 1; }
svg .pt.front { fill: var(--accent); stroke: #1e3a8a; stroke-width: 1.2; }
svg .pt.infeasible { fill: #fff; stroke: var(--bad); stroke-width: 2; }
svg .pt.front.infeasible { fill: #fff; stroke: var(--accent); stroke-width: 2.5; }
svg a:hover .pt { stroke: #111827; stroke-width: 2.5; }
svg .front-line { fill: none; stroke: var(--accent); stroke-width: 2; opacity: .7; }
svg .budget { stroke: var(--bad); stroke-width: 1.5; stroke-dasharray: 6 4; }
svg .over { fill: #fef2f2; }
svg .budget-label { fill: var(--bad); font-size: 11px; }
svg .empty { fill: var(--muted); font-size: 14px; }
svg .bar { fill: #9ca3af; } svg .bar.opt { fill: var(--accent); } svg .bar.fail { fill: var(--bad); }
svg .bar.ok { fill: var(--good); }
svg .bar-text { fill: #374151; } svg .bar-text.na { fill: var(--muted); font-style: italic; }
svg .whisker { stroke: #6b7280; stroke-width: 1.5; } svg .box { fill: #bfdbfe; stroke: var(--accent); }
svg .p50 { stroke: #1e3a8a; stroke-width: 2.5; } svg .p99 { stroke: var(--bad); stroke-width: 2; }
svg .mean { fill: #111827; } svg .cut { fill: none; stroke: #6b7280; stroke-width: 1.5; }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; }
"""


def _page(title: str, body: list[str]) -> str:
    return "\n".join(['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      # nothing may load at view time: no scripts, no remote styles, fonts or images
                      '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
                      "style-src 'unsafe-inline'; img-src data:\">",
                      f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
                      *body, "</main>", "</body>", "</html>", ""])


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] | None = None,
           links: Sequence[str | None] | None = None, row_class: Sequence[str] | None = None,
           cls: str = "") -> str:
    """A table; `links[i]` links row i's first cell; numbers are right-aligned where `numeric` says so."""
    num = list(numeric) if numeric is not None else [False] * len(header)
    out = [f'<table class="{esc(cls)}">' if cls else "<table>", "<thead><tr>"]
    out += [f'<th class="n">{esc(h)}</th>' if n else f"<th>{esc(h)}</th>" for h, n in zip(header, num, strict=False)]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        rc = row_class[i] if row_class is not None else ""
        out.append(f'<tr class="{esc(rc)}">' if rc else "<tr>")
        for j, cell in enumerate(row):
            text = cell if isinstance(cell, Markup) else esc(_cell(cell))
            href = safe_href(links[i]) if links is not None and j == 0 else None
            if href:
                text = f'<a href="{esc(href)}">{text}</a>'
            out.append(f'<td class="n">{text}</td>' if j < len(num) and num[j] else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class Markup(str):
    """A table cell that is already markup (built here from escaped parts): not escaped again."""


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not finite(v):
            return "not measured"
        return f"{int(v):,}" if v.is_integer() and abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><span class="sw {cls}"></span>{esc(text)}</span>' for cls, text in items) + "</div>"


# ------------------------------------------------------------------------------------------ search.html


def search_page(title: str, points: Sequence[ScatterPoint], x_label: str, y_label: str,
                x_budget: float | None, y_budget: float | None,
                header: Sequence[str], rows: Sequence[Sequence[str]], row_links: Sequence[str | None]) -> str:
    """search.html: every trial on the two main objectives (front highlighted and joined, over-budget trials
    hollow red, budgets dashed), then the table, each row linking its trial's report."""
    if len(row_links) != len(rows):
        msg = f"search_page: {len(rows)} rows but {len(row_links)} row links"
        raise ValueError(msg)
    svg, chart_notes = scatter_svg(points, x_label, y_label, x_budget, y_budget)
    plotted = [p for p in points if finite(p.x) and finite(p.y)]
    missing = len(points) - len(plotted)
    front = sum(p.on_front for p in plotted)
    over = sum(not p.feasible for p in points)
    summary = (f"{len(points)} trial{'s' if len(points) != 1 else ''}, {front} on the Pareto front, "
               f"{over} over budget" + (f", {missing} not plotted (not measured)" if missing else ""))
    legend = [("front", "Pareto front"), ("line", "front (step line)"), ("other", "other trial"),
              ("infeasible", "over budget")]
    if finite(x_budget) or finite(y_budget):
        legend.append(("budget", "budget"))
    body = [f"<h1>{esc(title)}</h1>", f'<p class="sub">{esc(summary)}</p>',
            '<div class="card">', _legend(legend), svg]
    body += [f'<p class="note">{esc(n)}</p>' for n in chart_notes]
    body += ["</div>", "<h2>Trials</h2>", _table(list(header), rows, links=row_links, cls="trials"),
             '<footer>edgeopt search; hover a point for its figures, click it (or a row) for its report.</footer>']
    return _page(title, body)


# ------------------------------------------------------------------------------------------ report.html


def _kib(b: int | None) -> str:
    return "-" if b is None else f"{b / 1024:.1f} KiB" if b >= 1024 else f"{b} B"


def _ok_badge(ok: bool | None) -> str:
    cls, text = {True: ("ok", "ok"), False: ("fail", "FAIL"), None: ("na", "unchecked")}[ok]
    return f'<span class="badge {cls}">{text}</span>'


def _tile(key: str, value: str, detail: str) -> str:
    return (f'<div class="tile"><div class="k">{esc(key)}</div><div class="v">{esc(value)}</div>'
            f'<div class="d">{esc(detail)}</div></div>')


def _tiles(r: rs.Report) -> str:
    b, o = r.baseline, r.optimized
    tiles = [_tile("size", _kib(o.artifact.bytes), f"{_kib(b.artifact.bytes)} baseline, {r.ratios.size:.3g}x")]
    acc = o.accuracy
    if acc is not None:
        if acc.value is not None:
            value = f"{acc.value:.2f}%"
        elif acc.agreement is not None:
            value = f"{acc.agreement:.2f}% agree"
        else:  # not class scores (regression, maps): scored by SNR against the float model
            value = f"{acc.snr_db:.1f} dB SNR"
        drop = f"drop {acc.drop:.2f} points" if acc.drop is not None else f"against {acc.reference}"
        tiles.append(_tile(f"accuracy ({acc.metric})", value, f"{drop}, {acc.samples:,} samples"))
    else:
        tiles.append(_tile("accuracy", "not measured", "no eval data"))
    lat = o.latency_ms
    where = "host " if is_mcu(r) else ""
    if lat is not None:
        tiles.append(_tile(f"{where}latency p50", f"{lat.p50:.3g} ms",
                           f"p90 {lat.p90:.3g}, p99 {lat.p99:.3g} ms" + (
                               f"; {ratio} vs baseline" if (ratio := latency_ratio_text(r.ratios)) else "")))
    else:
        tiles.append(_tile("latency", "not measured", "benchmark skipped"))
    dev = device_estimate_ms(r)
    if dev is not None:
        tiles.append(_tile("device latency (estimate)", f"{dev:.3g} ms", f"{device_estimate_method(r)}, not measured"))
    e = r.stages.energy
    if e is not None and e.millijoules_per_inference is not None:
        tiles.append(_tile(f"energy ({e.method})", f"{e.millijoules_per_inference:.3g} mJ", "per inference"))
    return '<div class="tiles">' + "".join(tiles) + "</div>"


def _variants(r: rs.Report) -> list[str]:
    header = ["", "scheme", "bytes", "top-1 %", "agree %", "SNR dB", "p50 ms", "p90 ms", "p99 ms", "mean ms",
              "min ms", "max ms", "runs"]
    rows = []
    for name, v in (("baseline", r.baseline), ("optimized", r.optimized)):
        a, lat = v.accuracy, v.latency_ms
        rows.append([name, v.artifact.scheme, v.artifact.bytes,
                     None if a is None else a.value, None if a is None else a.agreement,
                     None if a is None else a.snr_db,
                     *((None,) * 7 if lat is None else (lat.p50, lat.p90, lat.p99, lat.mean, lat.min, lat.max,
                                                        lat.runs))])
    rows.append(["ratio", "", f"{r.ratios.size:.3g}x", None, None, None, latency_ratio_text(r.ratios), None, None,
                 None, None, None, None])
    where = "LiteRT on the build host, not the device; " if is_mcu(r) else ""
    return ['<div class="scroll">' + _table(header, rows, numeric=[False, False] + [True] * 11, cls="variants")
            + "</div>",
            f'<p class="note">{esc(where)}baseline {esc(r.baseline.artifact.path)}, optimized '
            f"{esc(r.optimized.artifact.path)}; ratio = optimized / baseline.</p>"]


def _size_and_latency(r: rs.Report) -> list[str]:
    b, o = r.baseline, r.optimized
    size_limit = next((x.limit * 1024 for x in r.budgets if x.name == "max_model_kb"), None)
    out = ["<h2>Size</h2>", '<div class="card">',
           bars_svg([Bar(f"baseline ({b.artifact.scheme})", b.artifact.bytes, _kib(b.artifact.bytes)),
                     Bar(f"optimized ({o.artifact.scheme})", o.artifact.bytes,
                         f"{_kib(o.artifact.bytes)} ({r.ratios.size:.3g}x)", "opt")], limit=size_limit)]
    if size_limit is not None:
        out.append(_legend([("budget", f"max_model_kb {size_limit / 1024:g} KiB")]))
    out.append("</div>")
    spreads = [Spread(name, v.latency_ms.min, v.latency_ms.p50, v.latency_ms.p90, v.latency_ms.p99,
                      v.latency_ms.max, v.latency_ms.mean)
               for name, v in (("baseline", b), ("optimized", o)) if v.latency_ms is not None]
    title = "Latency distribution" + (" (LiteRT on the build host, not the device)" if is_mcu(r) else "")
    out.append(f"<h2>{esc(title)}</h2>")
    if not spreads:
        out.append('<p class="note">Latency not measured (the benchmark was skipped).</p>')
        return out
    lat = o.latency_ms or b.latency_ms
    assert lat is not None
    out += ['<div class="card">', _legend([("box", "p50 to p90"), ("whisker", "min to max"), ("p99", "p99"),
                                           ("mean", "mean")]),
            spread_svg(spreads), f'<p class="note">{esc(_measured_line(lat))}</p>', "</div>"]
    return out


def _measured_line(lat: rs.LatencyInfo) -> str:
    where = "this host" if lat.where == "local" else lat.where
    f = lat.fingerprint
    base = (f"{lat.runs} timed runs after {lat.warmup} warm-up, {lat.threads} thread(s), {lat.runtime} "
            f"{lat.runtime_version}, delegate {lat.delegate}, on {where}")
    emulated = "" if f is None or f.emulation is None else \
        f" EMULATED CPU ({f.emulation}): the emulator's speed, not a real {f.arch} device's."
    return base + ("" if f is None else f" ({f.host}: {f.cpu}, {f.cores} cores, {f.os})") + "." + emulated


def _budgets(r: rs.Report) -> list[str]:
    if not r.budgets:
        return ["<h2>Budgets</h2>", '<p class="note">No budgets in the profile.</p>']
    rows = [[b.name, b.limit, b.actual, b.unit, Markup(_ok_badge(b.ok))] for b in r.budgets]
    bars = [Bar(b.name, None if b.actual is None or b.limit <= 0 else 100 * b.actual / b.limit,
                "unchecked" if b.actual is None else f"{100 * b.actual / b.limit:.0f}% of the limit"
                if b.limit > 0 else "-", {True: "ok", False: "fail", None: ""}[b.ok]) for b in r.budgets]
    return ["<h2>Budgets</h2>", _table(["budget", "limit", "actual", "unit", "status"], rows,
                                       numeric=[False, True, True, False, False]),
            '<div class="card">', _legend([("budget", "the limit (100%)")]), bars_svg(bars, limit=100.0), "</div>"]


def _composition(c: rs.Composition) -> list[str]:
    zeros = "not read" if c.sparsity is None else f"{100 * c.sparsity:.1f}% zero filter weights"
    return ["<h2>Composition (per step)</h2>",
           f'<p class="sub">compression {c.compression_ratio:.3g}x (float bytes / final bytes), structured pruning '
           f'{fmt(c.pruning_ratio)}x (params), quantization {esc(c.quantization_bit_ratio)}, sparsity {esc(zeros)}</p>',
           '<div class="card">',
           bars_svg([Bar(s.stage, s.params, f"{s.params:,} params" + (
               f", top-1 {s.accuracy:.2f}%" if s.accuracy is not None else ""), "opt" if i else "")
               for i, s in enumerate(c.steps)]), "</div>",
           _table(["after step", "params", "top-1 %"], [[s.stage, s.params, s.accuracy] for s in c.steps],
                  numeric=[False, True, True])]


def _stage_sections(st: rs.Stages) -> list[str]:
    """The other optional stages, each only when it ran."""
    out: list[str] = []
    if (p := st.prune) is not None:
        out += ["<h2>Structured pruning</h2>",
                f'<p class="sub">{esc(p.criterion)}, {esc(p.allocation)}: MACs {p.macs_before:,} to {p.macs_after:,} '
                f"({100 * p.macs_reduction:.1f}% fewer), params {p.params_before:,} to {p.params_after:,}; top-1 "
                f"{fmt(p.accuracy_before)} to {fmt(p.accuracy_after_prune)} after pruning, "
                f"{fmt(p.accuracy_after_finetune)} after fine-tuning</p>",
                _table(["layers", "channels before", "after"],
                       [[", ".join(g.layers), g.channels_before, g.channels_after] for g in p.groups],
                       numeric=[False, True, True])]
    if (z := st.sparsity) is not None:
        out += ["<h2>Sparsity</h2>",
                f'<p class="sub">{esc(z.pattern)}, target {100 * z.sparsity:.0f}%, achieved {100 * z.achieved:.2f}%; '
                f"top-1 {fmt(z.accuracy_before)} to {fmt(z.accuracy_after)}</p>",
                _table(["layer", "weights", "zeros"], [[x.layer, x.params, x.zeros_after] for x in z.layers],
                       numeric=[False, True, True])]
    if (k := st.cluster) is not None:
        out += ["<h2>Weight sharing</h2>",
                f'<p class="sub">{k.spec.clusters} clusters ({esc(k.spec.init)}), top-1 {fmt(k.accuracy_before)} to '
                f"{fmt(k.accuracy_after)}</p>",
                _table(["layer", "unique values before", "after"],
                       [[x.layer, x.unique_before, x.unique_after] for x in k.layers], numeric=[False, True, True])]
    if (q := st.partial) is not None:
        out += ["<h2>Partial quantization (accuracy control)</h2>",
                f'<p class="sub">budget: drop at most {fmt(q.max_accuracy_drop)} points; met: '
                f"{'yes' if q.met else 'no'}; chosen step {q.chosen}</p>",
                _table(["step", "scheme", "bytes", "top-1 %", "drop", "p50 ms", "out of int8"],
                       [[s.step, s.scheme, s.size_bytes, s.accuracy, s.accuracy_drop, s.latency_p50_ms,
                         ", ".join(s.layers) or "-"] for s in q.steps],
                       numeric=[True, False, True, True, True, True, False],
                       row_class=["front" if s.step == q.steps[q.chosen].step else "" for s in q.steps])]
    if (t := st.qat) is not None:
        out += ["<h2>Quantization-aware training</h2>",
                f'<p class="sub">{t.epochs} epoch(s) in {t.train_seconds:.1f} s ({esc(t.role)}); int8 scales from '
                f"{esc(t.scales_from)}; Keras top-1 float {fmt(t.float_keras_accuracy)}, fake-quant "
                f"{fmt(t.qat_keras_accuracy)}</p>"]
    if (a := st.onnx_activations) is not None:
        out += ["<h2>int8 activations (ONNX)</h2>",
                f'<p class="sub">kept {esc(a.chosen)} ({"measured" if a.measured else "not measured"})</p>',
                _table(["activations", "p50 ms", "ratio to float", "metric", "accuracy", "accuracy drop",
                        "within budget"],
                       [[c.kind, c.p50_ms, c.latency_ratio, c.metric, c.accuracy, c.accuracy_drop, c.within_budget]
                        for c in a.candidates],
                       numeric=[False, True, True, False, True, True, False])]
    if (m := st.mcu) is not None:
        d = m.device_latency
        out += ["<h2>Microcontroller (TFLite Micro)</h2>", _table(["", "value"], [
            ["ops", ", ".join(m.ops)], ["tensor arena (exact, measured)", f"{m.arena_bytes:,} B"],
            ["flash (model + runtime)", f"{m.flash_bytes:,} B" + (f" of {m.flash_limit_bytes:,}" if m.flash_limit_bytes
                                                                   else "")],
            ["RAM (arena + I/O)", f"{m.ram_bytes:,} B" + (f" of {m.ram_limit_bytes:,}" if m.ram_limit_bytes else "")],
            ["TFLM vs LiteRT", m.comparison_note],
            ["device latency (estimate)", "not estimated (no [mcu] sustained_macs_per_second)" if d is None
             else f"{fmt(d.estimate_ms)} ms ({d.macs:,} MACs / {d.macs_per_second:,.0f} MAC/s)"],
            ["host TFLM latency (build host, not the device)", f"{fmt(m.host_tflm_latency_ms)} ms"]])]
    if (f := st.firmware) is not None:
        e, fl = f.elf, f.device_latency
        out += ["<h2>Firmware (emulated Cortex-M)</h2>", _table(["", "value"], [
            ["image", f"{f.model} on {f.core} ({f.qemu_machine}), {f.samples} samples"],
            ["flash (ELF)", f"{e.flash_bytes:,} B of {f.flash_limit_bytes:,}"],
            ["RAM (ELF)", f"{e.ram_bytes:,} B of {f.ram_limit_bytes:,}"],
            ["arena on the 32-bit target (exact)", f"{f.arena.target_bytes:,} B (host {f.arena.host_bytes:,} B)"],
            ["instructions per inference", f"median {f.instructions.median:,}"],
            ["device latency (instruction-count estimate)", "not estimated" if fl is None
             else f"{fmt(fl.median_ms)} ms ({fl.cpi:g} CPI, {fl.clock_mhz:g} MHz)"],
            ["vs host TFLM", f.vs_host_tflm.description], ["vs LiteRT", f.vs_litert.description]])]
    if (n := st.npu) is not None:
        ops = n.operators
        fell = ", ".join(f"{op} x{k}" for op, k in sorted(ops.cpu_ops.items()))
        top = sorted(n.layers, key=lambda r: r.cycles, reverse=True)[:10]
        out += ["<h2>NPU (Ethos-U, Vela)</h2>",
                f'<p class="sub">{esc(n.compiled_model)}: {esc(n.label)}, the NPU part only (CPU operators run on '
                "the Cortex-M and are not included)</p>", _table(["", "value"], [
                    ["operators on the NPU", f"{ops.npu} of {ops.total}"],
                    ["operators on the CPU", f"{ops.cpu}" + (f": {fell}" if fell else "")],
                    ["SRAM", f"{n.sram_bytes:,} B"], ["flash", f"{n.flash_bytes:,} B"],
                    ["cycles (NPU part)", f"{n.cycles:,} at {n.clock_mhz:g} MHz = {fmt(n.latency_ms)} ms"]]),
                _table(["layer", "operator", "on", "cycles", "ms"],
                       [[r.name, f"{r.original_operator} / {r.operator}", r.target, r.cycles, r.time_ms] for r in top],
                       numeric=[False, False, False, True, True])]
    if (en := st.energy) is not None:
        text = (f"{en.method}: {en.note}" if en.joules_per_inference is None else
                f"{fmt(en.millijoules_per_inference)} mJ per inference ({en.method}; power {fmt(en.power_mw)} mW from "
                f"{en.power_source}" + (f", latency {fmt(en.latency_ms)} ms from {en.latency_source}"
                                        if en.latency_source else "") + ")")
        if en.battery is not None:
            text += f"; battery {en.battery.battery}: {fmt(en.battery.days)} days ({en.battery.label})"
        out += ["<h2>Energy per inference</h2>", f'<p class="sub">{esc(text)}</p>']
    return out


def build_page(report: rs.Report) -> str:
    """report.html: one build's baseline vs optimized, per-step composition, latency distribution, budgets,
    the optional stages that ran, and the notes."""
    r = report
    title = f"{r.input.path} -> {r.target.name}"
    sub = (f"{r.target.device_class}, edgeopt {r.tool.version}, input {fmt(r.input.params)} params / "
           f"{fmt(r.input.macs)} MACs, calibration {r.calibration.source} ({r.calibration.samples} samples), "
           f"eval {r.eval_data or 'none'}, built in {r.build_seconds:.1f} s")
    verdict = '<span class="badge ok">budgets ok</span>' if r.ok else '<span class="badge fail">FAILED</span>'
    body = [f"<h1>{esc(title)} {verdict}</h1>",
            f'<p class="sub">{esc(sub)}</p>', _tiles(r), "<h2>Baseline vs optimized</h2>", *_variants(r)]
    body += _size_and_latency(r)
    if r.stages.composition is not None:
        body += _composition(r.stages.composition)
    body += _budgets(r)
    body += _stage_sections(r.stages)
    body += ["<h2>Notes</h2>", '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in r.notes) + "</ul>"
             if r.notes else '<p class="note">No notes.</p>',
             f"<footer>report schema {esc(r.schema_version)}, profile sha256 {esc(r.target.profile_sha256[:12])}"
             "; the figures are those of report.json beside this page.</footer>"]
    return _page(f"edgeopt report: {title}", body)
