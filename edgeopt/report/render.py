"""Render a Report as Markdown and as a rich console table."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from edgeopt.report import schema as rs
from edgeopt.report.markdown import cell, code, text
from edgeopt.report.notes import summarize
from edgeopt.report.schema import Report, Variant
from edgeopt.report.table import printable, table
from edgeopt.vocabulary import DeviceClass


def is_mcu(report: Report) -> bool:
    """An MCU build: its measured latency is LiteRT on the build host, never the device."""
    return report.target.device_class == DeviceClass.EMBEDDED_MCU


def latency_ratio_text(ratios: rs.Ratios) -> str | None:
    """The p50 ratio as a user reads it: "1.71x (slower)", "0.58x (faster)", "1.00x (same)"."""
    if ratios.latency_p50 is None:
        return None
    return f"{ratios.latency_p50:.2f}x ({ratios.latency_verdict})"


FIRMWARE_METHOD = "firmware instruction count"  # instructions x [firmware] cpi / clock, from the emulated image
MAC_RATE_METHOD = "MAC rate"  # MACs / [mcu] sustained_macs_per_second


def device_estimate_ms(report: Report) -> float | None:
    """The primary device latency estimate: the firmware's when that stage ran, else MACs / MAC rate."""
    f = report.stages.firmware
    if f is not None and f.device_latency is not None:
        return f.device_latency.median_ms
    m = report.stages.mcu
    return None if m is None or m.device_latency is None else m.device_latency.estimate_ms


def device_estimate_method(report: Report) -> str | None:
    """What `device_estimate_ms` is: FIRMWARE_METHOD, MAC_RATE_METHOD or None (no estimate)."""
    if device_estimate_ms(report) is None:
        return None
    f = report.stages.firmware
    return FIRMWARE_METHOD if f is not None and f.device_latency is not None else MAC_RATE_METHOD


def _row(label: str, v: Variant) -> list[object]:
    acc = v.accuracy
    lat = v.latency_ms
    return [label, v.artifact.scheme, v.artifact.bytes,
            None if acc is None else (acc.value if acc.value is not None else None),
            None if acc is None else acc.agreement, None if acc is None else acc.snr_db,
            None if lat is None else lat.p50, None if lat is None else lat.p90]


def _measured_where(report: Report) -> str:
    lat = report.optimized.latency_ms
    return "host" if lat is None or lat.where == "local" else lat.where


def _columns(report: Report) -> list[str]:
    if is_mcu(report):  # what was timed is LiteRT on a CPU, labelled as such; the device figure is an estimate
        where = _measured_where(report)
        latency = [f"{where} p50 ms", f"{where} p90 ms", "device ms (est.)"]
    else:
        latency = ["p50 ms", "p90 ms"]
    return ["", "scheme", "bytes", "top1%", "agree%", "SNR dB", *latency]


def _rows(report: Report) -> list[list[object]]:
    """baseline, optimized and ratio rows; an MCU build adds the device estimate (the float model does not run there)."""
    r = report.ratios
    rows: list[list[object]] = [_row("baseline", report.baseline), _row("optimized", report.optimized),
            ["ratio (optimized / baseline)", "", f"{r.size:.3g}x", None, None, None, latency_ratio_text(r), None]]
    if is_mcu(report):
        for row, extra in zip(rows, (None, device_estimate_ms(report), None), strict=True):
            row.append(extra)
    return rows


Name = Callable[[object], str]  # how a line shows a name: as it is (console), a code span (Markdown)


def _fingerprint_line(report: Report, name: Name = str) -> str | None:
    """Where latency was measured: machine and runtime, in one line."""
    lat = report.optimized.latency_ms
    if lat is None:
        return None
    what = "host latency" if is_mcu(report) and lat.where == "local" else "latency"
    where = "this host" if lat.where == "local" else name(lat.where)
    f = lat.fingerprint
    if f is None:
        return (f"{what} measured on {where}: {name(lat.runtime)} {name(lat.runtime_version)}, "
                f"{lat.threads} thread(s)")
    system = f.os if f.arch in f.os else f"{f.os} {f.arch}"
    opt = f", graph opt {name(f.graph_optimization)}" if f.graph_optimization else ""
    emulated = (f"; EMULATED CPU ({name(f.emulation)}): the emulator's speed, not a real {name(f.arch)} device's"
                if f.emulation else "")
    return (f"{what} measured on {where} ({name(f.host)}): {name(f.cpu)}, {f.cores} cores, {name(system)}; "
            f"{name(f.implementation)} {name(f.runtime_version)}, {f.threads} thread(s), delegate "
            f"{name(f.delegate)}{opt}{emulated}")


def _timing_line(report: Report, name: Name = str) -> str | None:
    """CPU time beside wall time, the input shapes timed and the host's load, in one line."""
    opt, base = report.optimized.latency_ms, report.baseline.latency_ms
    if opt is None or base is None:
        return None
    parts = []
    if opt.cpu_ms is not None and base.cpu_ms is not None:
        parts.append(f"CPU time per invoke {opt.cpu_ms:.4g} ms optimized, {base.cpu_ms:.4g} ms baseline "
                     f"(wall mean {opt.mean:.4g} / {base.mean:.4g} ms; all threads of the process)")
    if opt.input_shapes:
        parts.append("inputs " + ", ".join(f"{name(n)}={'x'.join(map(str, d)) or 'scalar'}" for n, d in opt.input_shapes))
    if opt.cores is not None:
        load = "" if opt.load_1m is None else f", 1-minute load {opt.load_1m:.2f}"
        busy = " (busy: see notes)" if opt.load_above_cores or opt.threads_above_cores else ""
        parts.append(f"{opt.threads} thread(s) on {opt.cores} usable core(s){load}{busy}")
    return ("timing: " + "; ".join(parts)) if parts else None


def _device_line(report: Report, name: Name = str) -> str | None:
    """For an MCU build: the device latency estimate and what the host figures are."""
    if not is_mcu(report):
        return None
    where = _measured_where(report)
    host = f"{where} p50/p90 are LiteRT on {'the build host' if where == 'host' else where}, not the microcontroller"
    f = report.stages.firmware
    if f is not None and f.device_latency is not None:
        fl, ins = f.device_latency, f.instructions
        return (f"device latency: {fl.median_ms:.4g} ms, a firmware instruction-count estimate ({ins.median:,} "
                f"instructions per inference on {name(f.core)} under QEMU x {fl.cpi:g} CPI / {fl.clock_mhz:g} MHz, "
                f"[firmware] cpi and clock_mhz), not measured; {host}")
    m = report.stages.mcu
    if m is None or m.device_latency is None:
        return f"device latency: not estimated (set [mcu] sustained_macs_per_second in the profile); {host}"
    d = m.device_latency
    return (f"device latency: {d.estimate_ms:.4g} ms, an estimate ({d.macs:,} MACs / {d.macs_per_second:,.0f} MAC/s, "
            f"[mcu] sustained_macs_per_second), not measured; {host}")


def _firmware_line(report: Report) -> str | None:
    """The firmware stage in one line: the image's flash/RAM, the 32-bit arena and the host comparison."""
    f = report.stages.firmware
    if f is None:
        return None
    e, a = f.elf, f.arena
    return (f"firmware on {f.core} ({f.qemu_machine}): ELF flash {e.flash_bytes / 1024:.1f} KiB, RAM "
            f"{e.ram_bytes / 1024:.1f} KiB; arena {a.target_bytes:,} B on the 32-bit target (host {a.host_bytes:,} B); "
            f"{f.instructions.median:,} instructions per inference; {f.vs_host_tflm.description}")


def _npu_line(report: Report, name: Name = str) -> str | None:
    """The NPU stage in one line: where the operators run, memory and Vela's estimate, labelled."""
    n = report.stages.npu
    if n is None:
        return None
    ops = n.operators
    fell = ", ".join(f"{name(op)} x{k}" for op, k in sorted(ops.cpu_ops.items()))
    return (f"NPU {n.accelerator}: {ops.npu} of {ops.total} operators on the NPU, {ops.cpu} on the CPU"
            + (f" ({fell})" if fell else "") + f"; SRAM {n.sram_bytes / 1024:.2f} KiB, flash {n.flash_bytes / 1024:.2f} "
            f"KiB; {n.cycles:,} cycles = {n.latency_ms:.4g} ms at {n.clock_mhz:g} MHz, {n.label}, NPU part only; "
            f"compiled model {name(n.compiled_model)}")


NPU_TOP_LAYERS = 10  # layers shown in report.md and on the console (all of them are in report.json)


def npu_rows(n: rs.NpuStage, name: Name = str) -> list[list[object]]:
    """The NPU stage as (what, value) rows: operators, memory and Vela's estimate."""
    ops = n.operators
    fell = ", ".join(f"{name(op)} x{k}" + (f" ({name(ops.cpu_reasons[op])})" if op in ops.cpu_reasons else "")
                     for op, k in sorted(ops.cpu_ops.items()))
    return [
        ["operators on the NPU", f"{ops.npu} of {ops.total} ({ops.command_streams} NPU command stream(s))"],
        ["operators on the CPU", f"{ops.cpu}" + (f": {fell}" if fell else "")],
        ["SRAM", _kib(n.sram_bytes)], ["flash", _kib(n.flash_bytes)],
        ["cycles (NPU part, estimate)", f"{n.cycles:,} at {n.clock_mhz:g} MHz = {n.latency_ms:.4g} ms"],
        ["MACs", f"{n.macs:,}"]]


def npu_layer_rows(n: rs.NpuStage, name: Name = str, top: int = NPU_TOP_LAYERS) -> list[list[object]]:
    """The `top` layers by Vela's cycles: layer, operator (TFLite / Vela's), NPU or CPU, cycles, ms, MACs."""
    rows = sorted(n.layers, key=lambda r: r.cycles, reverse=True)[:top]
    return [[name(r.name), f"{name(r.original_operator)} / {name(r.operator)}", r.target, r.cycles, r.time_ms, r.macs]
            for r in rows]


NPU_LAYER_COLUMNS = ["layer", "operator", "on", "cycles", "ms", "MACs"]


def _npu_markdown(n: rs.NpuStage) -> list[str]:
    out = ["", "## NPU (Ethos-U, Vela)", "",
           f"{code(n.compiled_model)}: the int8 artifact compiled by {n.compiler} for {code(n.accelerator)} "
           f"(system {code(n.system_config)}, memory mode {code(n.memory_mode)}; {text(n.config_source) or 'no source'}). "
           f"Every figure below is an **{text(n.label)}**, the NPU part only: operators left for the CPU run on the "
           "Cortex-M and are not in it.", ""]
    out += _table(["", "value"], npu_rows(n, cell))
    if rows := npu_layer_rows(n, cell):
        out += ["", f"Most expensive layers ({len(rows)} of {len(n.layers)}; all in report.json):", ""]
        out += _table(NPU_LAYER_COLUMNS, rows)
    return out


def _metric_text(o: rs.OutputAccuracy) -> str:
    if o.metric == "top1":
        return f"top-1 {o.value:.2f}% (float model {o.reference_value:.2f}%)"
    if o.metric == "agreement":
        return f"{o.value:.2f}% agree with the float model"
    if o.metric == "snr":
        return f"{o.value:.1f} dB"
    return f"{o.value:.4g}"


def _output_pairs(report: Report) -> list[tuple[rs.OutputAccuracy, rs.OutputAccuracy | None]]:
    """(optimized, baseline) per output, when there is more to say than the table: several outputs or a metric
    other than top-1 / agreement."""
    opt, base = report.optimized.accuracy, report.baseline.accuracy
    if opt is None or not opt.outputs:
        return []
    if len(opt.outputs) == 1 and opt.outputs[0].metric in ("top1", "agreement"):
        return []
    by_name = {o.name: o for o in (base.outputs if base is not None else [])}
    return [(o, by_name.get(o.name)) for o in opt.outputs]


def _quoted(name: object) -> str:
    return f"'{name}'"


def _output_lines(report: Report, name: Name = _quoted) -> list[str]:
    """One line per output: its metric on the optimized artifact (and the float baseline artifact)."""
    lines = []
    for o, b in _output_pairs(report):
        check = "" if o.ok is None else f"; {o.budget} {'ok' if o.ok else 'FAILED'}"
        base = "" if b is None else f" (float artifact {_metric_text(b)})"
        cos = "" if o.cosine is None else f"cosine {o.cosine:.4f}, "
        lines.append(f"output {name(o.name)} by {o.metric}: {_metric_text(o)}{base}; SNR {o.snr_db:.1f} dB, "
                     f"{cos}max abs {o.max_abs:.3g}{check}")
    return lines


def to_console(report: Report, console: Console) -> None:
    console.print(table(f"{report.input.path} -> {report.target.name}", _columns(report), _rows(report)))
    console.print(printable(f"baseline: {report.baseline.artifact.path}  optimized: {report.optimized.artifact.path}"),
                  markup=False)
    for line in (*_output_lines(report), _device_line(report), _firmware_line(report), _npu_line(report),
                 _fingerprint_line(report), _timing_line(report)):
        if line:
            console.print(printable(line), markup=False)
    if report.budgets:
        console.print(table("budgets", ["budget", "limit", "actual", "unit", "ok"],
                            [[b.name, b.limit, b.actual, b.unit, {True: "ok", False: "FAIL", None: "unchecked"}[b.ok]]
                             for b in report.budgets]))
    for line in summarize(report.notes, "report.json"):
        console.print(printable(line), markup=False)


def _md_cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{int(v):,}" if v.is_integer() and abs(v) >= 1000 else f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def to_markdown(report: Report) -> str:
    columns = _columns(report)
    eval_data = "none" if report.eval_data is None else code(report.eval_data)
    lines = [f"# edgeopt report: {code(report.input.path)} -> {code(report.target.name)}", "",
             f"edgeopt {report.tool.version}, profile sha256 `{report.target.profile_sha256[:12]}`, "
             f"input params {_md_cell(report.input.params)}, MACs {_md_cell(report.input.macs)}, "
             f"calibration: {code(report.calibration.source)} ({report.calibration.samples} samples), "
             f"eval: {eval_data}, build {report.build_seconds:.1f} s.", ""]
    lines += _table([c or "variant" for c in columns], _rows(report))
    for line in (_device_line(report, code), _fingerprint_line(report, code), _timing_line(report, code)):
        if line:
            lines += ["", line[0].upper() + line[1:] + "."]
    if pairs := _output_pairs(report):
        lines += ["", "## Accuracy per output", ""]
        lines += _table(["output", "metric", "float artifact", "optimized", "SNR dB", "cosine", "max abs", "budget"],
                        [[cell(o.name), o.metric, None if b is None else b.value, o.value, o.snr_db, o.cosine, o.max_abs,
                          "-" if o.ok is None else f"{o.budget} {'ok' if o.ok else 'FAILED'}"] for o, b in pairs])
    if report.budgets:
        lines += ["", "## Budgets", "", "| budget | limit | actual | unit | ok |", "|---|---|---|---|---|"]
        for b in report.budgets:
            lines.append(f"| {cell(b.name)} | {_md_cell(b.limit)} | {_md_cell(b.actual)} | {cell(b.unit)} | "
                         f"{ {True: 'ok', False: '**FAIL**', None: 'unchecked'}[b.ok] } |")
    lines += _stages_markdown(report.stages)
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {text(n)}" for n in report.notes]
    lines += ["", f"Overall: {'ok' if report.ok else '**FAILED**'}", ""]
    return "\n".join(lines)


def _table(columns: list[str], rows: list[list[object]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]


def _stages_markdown(stages: rs.Stages) -> list[str]:
    """Optional stages (composition, prune, cluster, partial quantization, MCU) as Markdown sections."""
    out: list[str] = []
    if (c := stages.composition) is not None:
        zeros = "not read" if c.sparsity is None else (
            f"{100 * c.sparsity:.1f}% ({c.zero_weights:,} of {c.kernel_weights:,} filter weights are zero; "
            "zeros are not removed parameters)")
        out += ["", "## Composition", "",
                f"Compression ratio (float bytes / final bytes) {_md_cell(c.compression_ratio)}, structured pruning "
                f"ratio (params before / after) {_md_cell(c.pruning_ratio)}, quantization {c.quantization_bit_ratio}, "
                f"sparsity {zeros}.", ""]
        out += _table(["after step", "params", "top-1 %"], [[s.stage, s.params, s.accuracy] for s in c.steps])
    if (e := stages.energy) is not None:
        out += ["", "## Energy per inference", ""]
        if e.joules_per_inference is None:
            out += [f"{e.method}: {text(e.note)}"]
        else:
            how = (f"{_md_cell(e.power_mw)} mW ({text(e.power_source)}) x {_md_cell(e.latency_ms)} ms "
                   f"({text(e.latency_source)})" if e.method == "estimate"
                   else f"net {_md_cell(e.power_mw)} mW over the window ({text(e.power_source)}; {text(e.note)})")
            out += [f"**{_md_cell(e.millijoules_per_inference)} mJ** per inference ({e.method}): {how}; "
                    f"{_md_cell(e.inferences_per_joule)} inferences per joule."]
            if e.battery is not None:
                b = e.battery
                out += ["", f"Battery life ({text(b.label)}): {code(b.battery)} ({_md_cell(b.capacity_mah)} mAh, "
                        f"{_md_cell(b.voltage_v)} V) at {_md_cell(b.inferences_per_second)} inference/s: "
                        f"{_md_cell(b.days)} days (average {_md_cell(b.average_power_mw)} mW)."]
            if e.method == "estimate" and e.note:
                out += ["", f"Not measured: {text(e.note)}."]
    if (p := stages.prune) is not None:
        out += ["", "## Pruning", "",
                f"{p.criterion}, {p.allocation}, round_to {p.round_to}: MACs {p.macs_before:,} -> "
                f"{p.macs_after:,} ({100 * p.macs_reduction:.1f}% fewer), params {p.params_before:,} -> "
                f"{p.params_after:,}; top-1 {_md_cell(p.accuracy_before)} -> {_md_cell(p.accuracy_after_prune)} "
                f"after pruning -> {_md_cell(p.accuracy_after_finetune)} after fine-tuning.", ""]
        out += _table(["layers", "channels before", "after"],
                      [[", ".join(map(cell, g.layers)), g.channels_before, g.channels_after] for g in p.groups])
        out += [f"- left unpruned: {code(u.layer)} ({text(u.reason)})" for u in p.unprunable]
    if (z := stages.sparsity) is not None:
        out += ["", "## Sparsity (weight-level magnitude pruning)", "",
                f"{z.pattern}, {z.allocation}, target {100 * z.sparsity:.0f}%: {100 * z.achieved:.2f}% of the selected "
                f"kernel weights are zero ({z.finetune_epochs} fine-tuning epochs); top-1 {_md_cell(z.accuracy_before)} -> "
                f"{_md_cell(z.accuracy_after)}. Zeros are not removed parameters (shapes unchanged).", ""]
        out += _table(["layer", "weights", "zeros", "sparsity %"],
                      [[cell(x.layer), x.params, x.zeros_after, 100 * x.zeros_after / max(1, x.params)] for x in z.layers])
    if (k := stages.cluster) is not None:
        out += ["", "## Weight sharing", "",
                f"{k.spec.clusters} clusters ({k.spec.init}), top-1 {_md_cell(k.accuracy_before)} -> "
                f"{_md_cell(k.accuracy_after)}.", ""]
        out += _table(["layer", "unique values before", "after"],
                      [[cell(x.layer), x.unique_before, x.unique_after] for x in k.layers])
    if (q := stages.partial) is not None:
        chosen = q.steps[q.chosen]
        out += ["", "## Partial quantization (accuracy control)", "",
                f"Budget: drop <= {_md_cell(q.max_accuracy_drop)} points; met: {q.met}; chosen step {q.chosen} "
                f"({chosen.scheme}, drop {_md_cell(chosen.accuracy_drop)} points).", ""]
        out += _table(["step", "scheme", "bytes", "top-1 %", "drop", "p50 ms", "out of int8"],
                      [[s.step, s.scheme, s.size_bytes, s.accuracy, s.accuracy_drop, s.latency_p50_ms,
                        ", ".join(map(cell, s.layers)) or "-"] for s in q.steps])
    if (t := stages.qat) is not None:
        out += ["", "## Quantization-aware training", "",
                f"{t.epochs} epoch(s) in {t.train_seconds:.1f} s ({t.role}); int8 scales from {t.scales_from}; "
                f"{len(t.folded_bn)} BatchNorm folded; Keras top-1 float {_md_cell(t.float_keras_accuracy)} -> "
                f"fake-quant {_md_cell(t.qat_keras_accuracy)}.", ""]
    if (a := stages.onnx_activations) is not None:
        how = "measured, interleaved with the float baseline" if a.measured else "not measured"
        out += ["", "## int8 activations (ONNX)", "", f"Kept {a.chosen} ({how}).", ""]
        out += _table(["activations", "p50 ms", "ratio to float", "metric", "accuracy", "accuracy drop",
                       "within budget"],
                      [[c.kind, c.p50_ms, c.latency_ratio, c.metric, c.accuracy, c.accuracy_drop, c.within_budget]
                       for c in a.candidates])
    if (cv := stages.conversion) is not None:
        quantizer = f"; quantized by {text(cv.quantizer)}" if cv.quantizer else ""
        out += ["", "## Conversion (ONNX -> TFLite)", "",
                f"{text(cv.converter)} in {cv.seconds:.1f} s, proven against onnxruntime on {cv.samples} sample(s) of "
                f"the {text(cv.sample_source)} (min SNR {cv.min_snr_db:g} dB){quantizer}.", ""]
        out += _table(["output", "max-abs", "SNR dB"], [[code(o.name, True), o.max_abs, o.snr_db] for o in cv.outputs])
        out += ["", "Layout of the artifact's inputs and outputs (feed and read them this way):", ""]
        out += _table(["tensor", "artifact name", "source shape", "artifact shape", "layout"],
                      [[code(t.name, True), code(t.artifact_name, True), str(t.source_shape), str(t.artifact_shape),
                        t.layout] for t in (*cv.inputs_layout, *cv.outputs_layout)])
    if (m := stages.mcu) is not None:
        d = m.device_latency
        out += ["", "## Microcontroller (TFLite Micro)", ""]
        out += _table(["", "value"], [
            ["ops", ", ".join(map(cell, m.ops))], ["tensor arena (exact, measured)", f"{m.arena_bytes:,} B"],
            ["arena + margin (ARENA_SIZE)", f"{m.arena_with_margin:,} B"],
            ["flash (model + runtime)", f"{m.flash_bytes:,} B" + (f" of {m.flash_limit_bytes:,}" if m.flash_limit_bytes else "")],
            ["RAM (arena + I/O)", f"{m.ram_bytes:,} B" + (f" of {m.ram_limit_bytes:,}" if m.ram_limit_bytes else "")],
            ["TFLM vs LiteRT", text(m.comparison_note)],
            ["device latency (estimate: MACs / MAC/s)",
             "not estimated (no [mcu] sustained_macs_per_second)" if d is None
             else f"{_md_cell(d.estimate_ms)} ms ({d.macs:,} MACs / {d.macs_per_second:,.0f} MAC/s)"],
            ["host TFLM latency (build host CPU, not the device)", f"{_md_cell(m.host_tflm_latency_ms)} ms"],
            ["C files", f"{cell(m.c_header)}, {cell(m.c_source)}" if m.c_header else "-"]])
    if (f := stages.firmware) is not None:
        out += _firmware_markdown(f)
    if (n := stages.npu) is not None:
        out += _npu_markdown(n)
    return out


def _kib(b: int) -> str:
    return f"{b:,} B ({b / 1024:.1f} KiB)"


def _firmware_markdown(f: rs.FirmwareStage) -> list[str]:
    e, a, ins, lat = f.elf, f.arena, f.instructions, f.device_latency
    split = ", ".join(f"{k} {v:,}" for k, v in e.flash_split.items())
    rsplit = ", ".join(f"{k} {v:,}" for k, v in e.ram_split.items())
    out = ["", "## Firmware (emulated Cortex-M)", "",
           f"{code(f.model)} compiled with TFLite Micro + CMSIS-NN for {code(f.core)}, run on QEMU "
           f"{code(f.qemu_machine)} ({f.samples} samples, {code(f.sample_source) if f.sample_source else 'random'}).",
           ""]
    out += _table(["", "value"], [
        ["flash (ELF)", f"{_kib(e.flash_bytes)} of {f.flash_limit_bytes:,}: {split}"],
        ["RAM (ELF)", f"{_kib(e.ram_bytes)} of {f.ram_limit_bytes:,}: {rsplit}"],
        ["text / rodata / data / bss", f"{e.text:,} / {e.rodata:,} / {e.data:,} / {e.bss:,} B"],
        ["arena, 32-bit target (exact)", f"{a.target_bytes:,} B (one byte less fails: "
                                         f"{'yes' if a.target_minus_one_fails else 'NO'})"],
        ["arena, host TFLM (64-bit)", f"{a.host_bytes:,} B"],
        ["instructions / inference", f"median {ins.median:,} (min {ins.min:,}, max {ins.max:,})"],
        ["device latency (firmware instruction-count estimate)",
         "not estimated (no [firmware] cpi and clock_mhz)" if lat is None else
         f"{_md_cell(lat.median_ms)} ms = instructions x {lat.cpi:g} CPI ({text(lat.cpi_source)}) / "
         f"{lat.clock_mhz:g} MHz ({text(lat.clock_source)})"],
        ["vs host TFLM", text(f.vs_host_tflm.description)], ["vs LiteRT", text(f.vs_litert.description)]])
    return out
