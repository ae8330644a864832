"""Build the Report value from the stage results (never from logs).

`pipeline/build.py` gathers what each stage returned into one `BuildOutcome`;
`assemble_report` maps it onto the published schema without changing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt import __version__
from edgeopt.load.source import Source
from edgeopt.pipeline.artifacts import Artifacts
from edgeopt.pipeline.compress import Compressed
from edgeopt.pipeline.manifest import sha256_path
from edgeopt.profiles import ResolvedProfile
from edgeopt.profiles.schema import Profile
from edgeopt.report import schema as rs

if TYPE_CHECKING:
    from edgeopt.benchmark.fingerprint import Fingerprint
    from edgeopt.benchmark.protocol import BenchResult
    from edgeopt.cluster.clusterer import ClusterResult
    from edgeopt.energy.figure import EnergyFigure
    from edgeopt.errors import BudgetViolation
    from edgeopt.firmware.results import Agreement
    from edgeopt.firmware.run import FirmwareResult
    from edgeopt.mcu.report import McuReport
    from edgeopt.npu.result import NpuStage
    from edgeopt.quantize.partial import PartialResult
    from edgeopt.sparsify.sparsifier import SparsifyResult
    from edgeopt.validate.accuracy import AccuracyResult
    from edgeopt.validate.metrics import AccuracyTarget


@dataclass(frozen=True)
class BuildOutcome:
    """What one build made and measured, as its stages returned it."""

    model: Path  # the model file given
    resolved: ResolvedProfile
    source: Source
    calibration: str  # a path, "random" or "none"
    calibration_samples: int
    eval_data: Path | None
    folder: Path  # where the artifacts are (the staging folder)
    artifacts: Artifacts
    accuracy: tuple[AccuracyResult, AccuracyResult] | None  # baseline, optimized
    latency: tuple[BenchResult, BenchResult] | None  # baseline, optimized
    compressed: Compressed | None  # prune / cluster, Keras sources only
    mcu: McuReport | None  # embedded-mcu targets
    notes: tuple[str, ...]
    build_seconds: float
    qat: rs.QatStage | None = None  # quantization-aware training, direct or as the ladder's last rung
    data_sample_shape: tuple[int, ...] | None = None  # one eval (else calibration) sample, batch 1
    data_origin: str = ""  # "eval", "calibration" or "--shape"
    energy: EnergyFigure | None = None  # the optimized artifact's energy per inference (edgeopt.energy)
    firmware: FirmwareResult | None = None  # the firmware stage: the image on the emulated core
    firmware_violations: tuple[BudgetViolation, ...] = ()  # the image did not fit the board (no firmware then)
    threads_from: str = "the profile's [runtime] threads"  # where the runtime's thread count came from
    target: AccuracyTarget | None = None  # each output's metric and budget limit
    npu: NpuStage | None = None  # profiles with [npu]: Vela's compilation for the Ethos-U


def assemble_report(outcome: BuildOutcome) -> rs.Report:
    o = outcome
    profile = o.resolved.profile
    arts = o.artifacts
    base_acc, opt_acc = o.accuracy if o.accuracy else (None, None)
    base_lat, opt_lat = o.latency if o.latency else (None, None)
    notes = list(o.notes)
    if o.eval_data is None:
        notes.append("accuracy unknown: no eval data (give --eval data.npz or put NAME.eval.npz next to the model)")
    if o.calibration == "random":
        notes.append("calibrated on random data: int8 ranges do not reflect real inputs"
                     + ("; accuracy is unknown" if o.eval_data is None else "; see the measured accuracy"))
    baseline = rs.Variant(artifact=_artifact(o.folder, arts.baseline, arts.format, "none"), accuracy=_acc_info(base_acc, None),
                          latency_ms=_lat_info(base_lat))
    optimized = rs.Variant(artifact=_artifact(o.folder, arts.optimized, arts.format, arts.scheme),
                           accuracy=_acc_info(opt_acc, o.target), latency_ms=_lat_info(opt_lat))
    ratios = rs.Ratios(size=optimized.artifact.bytes / baseline.artifact.bytes,
                       latency_p50=None if base_lat is None or opt_lat is None
                       else opt_lat.latency.p50 / base_lat.latency.p50)
    notes += _timing_notes(o.latency, o.threads_from)
    budgets, budget_notes = _budgets(profile, optimized, o.mcu, ratios.latency_p50, o.firmware, o.firmware_violations,
                                     o.target, opt_acc)
    notes += budget_notes
    notes += _far_below(opt_acc)
    params, macs = o.source.params_and_macs(_macs_shapes(o.source, o.data_sample_shape, o.data_origin, notes))
    if ratios.latency_verdict == "slower":
        assert baseline.latency_ms is not None and optimized.latency_ms is not None
        where = "on the build host (LiteRT, not the microcontroller)" if o.mcu is not None else \
            f"on {_where(optimized.latency_ms)}"
        notes.append(f"the optimized artifact is slower than the float baseline {where}: p50 "
                     f"{optimized.latency_ms.p50:.4g} ms vs {baseline.latency_ms.p50:.4g} ms "
                     f"({ratios.latency_p50:.2f}x)")
    c = o.compressed
    stages = rs.Stages(
        prune=None if c is None else c.prune,
        cluster=None if c is None or c.cluster is None else _cluster(c.cluster),
        sparsity=None if c is None or c.sparsity is None else _sparsity(c.sparsity),
        partial=None if arts.partial is None else _partial(arts.partial),
        qat=o.qat,
        onnx_activations=None if arts.activations is None else rs.OnnxActivationsStage.model_validate(arts.activations),
        conversion=arts.conversion,
        mcu=None if o.mcu is None else _mcu(o.mcu, arts.optimized),
        composition=_composition(c.steps if c is not None else (), params, baseline, optimized,
                                 o.folder / arts.optimized),
        energy=_energy(o.energy if o.energy is not None else None if o.mcu is None else o.mcu.energy),
        firmware=None if o.firmware is None else _firmware(o.firmware, arts.optimized),
        npu=o.npu,
    )
    return rs.Report(
        tool=rs.Tool(version=__version__),
        target=rs.Target(name=profile.name, profile_sha256=o.resolved.sha256, device_class=profile.device_class),
        input=rs.InputInfo(path=str(o.model), sha256=sha256_path(o.model), format=str(o.source.format),
                           params=params, macs=macs),
        calibration=rs.Calibration(source=o.calibration, samples=o.calibration_samples),
        eval_data=None if o.eval_data is None else str(o.eval_data),
        baseline=baseline, optimized=optimized, ratios=ratios, budgets=budgets, stages=stages, notes=notes,
        build_seconds=round(o.build_seconds, 3),
        ok=verdict(budgets, stages.firmware),
    )


def verdict(budgets: list[rs.Budget], firmware: rs.FirmwareStage | None) -> bool:
    """A build is ok when no budget is broken and, with a firmware stage, its output is bit-exact (Report.ok,
    BuildResult.ok, a search trial's feasibility)."""
    return all(b.ok is not False for b in budgets) and (firmware is None or firmware.bit_exact)


def _where(lat: rs.LatencyInfo) -> str:
    return "this host" if lat.where == "local" else lat.where


def _artifact(folder: Path, name: str, fmt: str, scheme: str) -> rs.ArtifactInfo:
    p = folder / name
    return rs.ArtifactInfo(path=name, format=fmt, scheme=scheme, bytes=p.stat().st_size, sha256=sha256_path(p))


def _acc_info(a: AccuracyResult | None, target: AccuracyTarget | None) -> rs.AccuracyInfo | None:
    """`target`: the budgets checked per output (the optimized artifact's); None for the baseline."""
    if a is None:
        return None
    from edgeopt.validate.metrics import checks

    outs = []
    for i, s in enumerate(a.outputs):
        limit = None if target is None or i >= len(target.limits) else target.limits[i]
        found = () if target is None else checks(s, limit, target)
        failed = [c.budget for c in found if not c.ok]
        outs.append(rs.OutputAccuracy(name=s.name, metric=s.metric, value=s.value, reference_value=s.reference_value,
                                      drop=s.drop, agreement=s.agreement, snr_db=s.snr_db, cosine=s.cosine,
                                      max_abs=s.max_abs,
                                      budget=", ".join(failed or [c.budget for c in found]) or None,
                                      ok=None if not found else not failed))
    return rs.AccuracyInfo(metric=a.metric, reference=a.reference, value=a.value, reference_value=a.reference_value,
                           drop=a.drop, agreement=a.agreement, snr_db=a.snr_db, samples=a.samples, outputs=outs)


def _accuracy_budgets(b: Any, acc: AccuracyResult | None,
                      target: AccuracyTarget | None) -> tuple[list[rs.Budget], list[str]]:
    """One row per accuracy check of each output of the optimized artifact (`acc`): its metric's budget
    (max_accuracy_drop for top1/agreement, min_snr_db for snr, min_cosine, max_abs_error), the floors min_snr_db
    and min_cosine on every output, and a collapsed output; a budget no output is scored by is noted."""
    from edgeopt.validate.metrics import BUDGETS, COLLAPSED, FLOORS, all_checks

    units = {k: (u, m) for k, u, m in BUDGETS.values()}
    keys = [k for k in units if getattr(b, k, None) is not None]
    if target is None:  # no target known (older callers): max_accuracy_drop on the primary output
        if b.max_accuracy_drop is None:
            return [], []
        actual = None if acc is None else acc.drop
        ok = None if actual is None else actual <= b.max_accuracy_drop + 1e-9
        return ([rs.Budget(name="max_accuracy_drop", limit=b.max_accuracy_drop, actual=actual, unit="points", ok=ok)],
                ["max_accuracy_drop not checked: no eval data"] if actual is None else [])
    names, metrics = target.names, target.metrics
    notes: list[str] = []

    def applies(key: str) -> list[str]:
        return [n for n, m in zip(names, metrics, strict=True) if BUDGETS[m][0] == key or key in FLOORS]

    out: list[rs.Budget] = []
    if acc is None:
        for key in keys:
            where = applies(key)
            if where:
                notes.append(f"{key} not checked: no eval data")
            for name in where:
                label = key if len(where) == 1 else f"{key} ({name})"
                out.append(rs.Budget(name=label, limit=getattr(b, key), actual=None, unit=units[key][0], ok=None))
    else:
        found = all_checks(acc.outputs, target)
        per_key = {k: sum(c.budget == k for c in found) for k in {c.budget for c in found}}
        for c in found:
            label = c.budget if per_key[c.budget] == 1 and c.budget != COLLAPSED else f"{c.budget} ({c.output})"
            out.append(rs.Budget(name=label, limit=c.limit, actual=c.actual, unit=c.unit, ok=c.ok))
        for key in keys:
            if key not in per_key:
                used = ", ".join(f"'{n}' by {m}" for n, m in zip(names, metrics, strict=True))
                notes.append(f"{key} not checked: no output is scored by its metric ({used})")
    for n, m in zip(names, metrics, strict=True):
        key = BUDGETS[m][0]
        if getattr(b, key, None) is None and not any(getattr(b, f, None) is not None for f in FLOORS):
            notes.append(f"output '{n}' is scored by {m} and no accuracy budget applies to it: set budgets.{key} "
                         "or a floor (min_snr_db, min_cosine) to check it")
    return out, list(dict.fromkeys(notes))


def _far_below(acc: AccuracyResult | None) -> list[str]:
    """A warning for each output of the optimized artifact far below the float model's (edgeopt.validate.metrics)."""
    if acc is None:
        return []
    from edgeopt.validate.metrics import far_below

    return [w for s in acc.outputs if (w := far_below(s))]


def _fingerprint(f: Fingerprint | None) -> rs.Fingerprint | None:
    if f is None:
        return None
    return rs.Fingerprint(host=f.host, cpu=f.cpu, cores=f.cores, arch=f.arch, os=f.os, python=f.python,
                          runtime=f.runtime, runtime_version=f.runtime_version, implementation=f.implementation,
                          threads=f.threads, delegate=f.delegate, graph_optimization=f.graph_optimization,
                          emulation=f.emulation)


def _lat_info(r: BenchResult | None) -> rs.LatencyInfo | None:
    if r is None:
        return None
    s = r.latency
    return rs.LatencyInfo(p50=s.p50, p90=s.p90, p99=s.p99, mean=s.mean, std=s.std, min=s.min, max=s.max, runs=s.runs,
                          warmup=r.warmup, threads=r.threads, runtime=r.runtime, runtime_version=r.runtime_version,
                          delegate=r.delegate, init_ms=r.init_ms, where=r.device or "local",
                          fingerprint=_fingerprint(r.fingerprint), cpu_ms=r.cpu_ms, cores=r.cores, load_1m=r.load_1m,
                          load_above_cores=None if r.host_load is None or r.load_1m is None else r.host_load.overloaded,
                          threads_above_cores=None if r.host_load is None else r.host_load.oversubscribed,
                          input_shapes=r.input_dims)


def _timing_notes(results: tuple[BenchResult, BenchResult] | None, threads_from: str) -> list[str]:
    """Why the measured latencies may be biased (host load, threads above the cores), once each."""
    if results is None:
        return []
    where = "" if results[1].device == "local" else f" on {results[1].device}"
    return [f"latency{where}: {w}" for w in dict.fromkeys(w for r in results for w in r.warnings(threads_from))]


def _budgets(profile: Profile, opt: rs.Variant, mcu: McuReport | None, lat_ratio: float | None = None,
             firmware: FirmwareResult | None = None,
             firmware_violations: tuple[BudgetViolation, ...] = (),
             target: AccuracyTarget | None = None,
             accuracy: AccuracyResult | None = None) -> tuple[list[rs.Budget], list[str]]:
    """The budgets checked, and a note for each one that could not be. When the firmware stage ran (or its image
    did not fit), flash and RAM are the linked ELF's, replacing the model + runtime_flash_kb figures."""
    b = profile.budgets
    out: list[rs.Budget] = []
    notes: list[str] = []
    if b.max_latency_ratio is not None:
        if lat_ratio is None:
            notes.append("max_latency_ratio not checked: the benchmark was skipped")
        out.append(rs.Budget(name="max_latency_ratio", limit=b.max_latency_ratio,
                             actual=None if lat_ratio is None else round(lat_ratio, 4), unit="x float p50",
                             ok=None if lat_ratio is None else lat_ratio <= b.max_latency_ratio))
    if b.max_model_kb is not None:
        kb = opt.artifact.bytes / 1024
        out.append(rs.Budget(name="max_model_kb", limit=b.max_model_kb, actual=round(kb, 3), unit="KiB", ok=kb <= b.max_model_kb))
    if b.max_latency_ms is not None:
        p90 = None if opt.latency_ms is None else opt.latency_ms.p90
        if p90 is None:
            notes.append("max_latency_ms not checked: the benchmark was skipped")
        out.append(rs.Budget(name="max_latency_ms", limit=b.max_latency_ms, actual=p90, unit="ms (p90)",
                             ok=None if p90 is None else p90 <= b.max_latency_ms))
    acc_rows, acc_notes = _accuracy_budgets(b, accuracy, target)
    out += acc_rows
    notes += acc_notes
    if firmware is not None or firmware_violations:
        for v in firmware_violations:
            out.append(rs.Budget(name=v.name, limit=v.limit, actual=v.actual, unit=v.unit, ok=False))
        if firmware is not None:
            e = firmware.elf
            for part, elf_bytes, linker_limit in (("flash", e.flash_bytes, firmware.flash_limit_bytes),
                                                  ("ram", e.ram_bytes, firmware.ram_limit_bytes)):
                out.append(rs.Budget(name=f"max_{part}_bytes", limit=linker_limit, actual=elf_bytes,
                                     unit="bytes (firmware ELF)", ok=elf_bytes <= linker_limit))
    elif mcu is not None:
        failed = {v.name for v in mcu.violations}
        for v in mcu.violations:
            out.append(rs.Budget(name=v.name, limit=v.limit, actual=v.actual, unit=v.unit, ok=False))
        for name, used, limit in (("flash", mcu.flash_bytes, mcu.flash_limit_bytes),
                                  ("ram", mcu.ram_bytes, mcu.ram_limit_bytes)):
            if limit and not any(name in f for f in failed):
                out.append(rs.Budget(name=f"max_{name}_bytes", limit=limit, actual=used, unit="bytes", ok=True))
    return out, notes


def _macs_shapes(source: Source, sample: tuple[int, ...] | None, origin: str,
                 notes: list[str]) -> dict[str, tuple[int, ...]] | None:
    """An ONNX source with symbolic dims beyond the batch counts MACs at the size of one eval/calibration sample."""
    if source.onnx_path is None or all(d is not None for d in source.input_shape[1:]):
        return None
    if sample is None:
        from edgeopt.runtime.shapes import shape_hint

        sized = [(i.name, i.shape) for i in source.inputs if any(d is None for d in i.shape[1:])] or \
            [(source.input_name or "input", source.input_shape)]
        hint = shape_hint((n, tuple(-1 if d is None else d for d in shape)) for n, shape in sized)
        notes.append(f"input MACs count the model's symbolic dimensions as 1: a lower bound; give {hint}")
        return None
    where = "from --shape" if origin == "--shape" else f"one sample of the {origin} data"
    notes.append(f"input MACs are for input shape {'x'.join(map(str, sample))} ({where})")
    return {"": sample}


def _cluster(r: ClusterResult) -> rs.ClusterStage:
    s = r.spec

    def size(c: object) -> rs.CompressedSize | None:
        return None if c is None else rs.CompressedSize.model_validate(c, from_attributes=True)

    return rs.ClusterStage(
        spec=rs.ClusterSpecInfo(clusters=s.clusters, layers=s.layers, init=str(s.init), epochs=s.epochs,
                                learning_rate=s.learning_rate, batch_size=s.batch_size, seed=s.seed),
        layers=[rs.ClusterLayer.model_validate(x, from_attributes=True) for x in r.layers], warnings=list(r.warnings),
        size_before=size(r.size_before), size_after=size(r.size_after), tflite_gzip_ratio=r.tflite_gzip_ratio,
        accuracy_before=r.accuracy_before, accuracy_after=r.accuracy_after, accuracy_drop=r.accuracy_drop,
        finetune_epochs=r.finetune_epochs, loss_history=list(r.loss_history))


def _sparsity(r: SparsifyResult) -> rs.SparsityStage:
    s = r.spec
    return rs.SparsityStage(
        sparsity=s.target, pattern=str(s.pattern), allocation=str(s.allocation), layers_regex=s.layers,
        layers=[rs.SparsityLayer(layer=x.layer, weight=x.weight, params=x.params, zeros_before=x.zeros_before,
                                 zeros_after=x.zeros_after) for x in r.layers],
        achieved=r.sparsity, accuracy_before=r.accuracy_before, accuracy_after=r.accuracy_after,
        finetune_epochs=r.finetune_epochs, mask_updates=r.mask_updates, warnings=list(r.warnings))


def _partial(r: PartialResult) -> rs.PartialStage:
    return rs.PartialStage(
        backend=r.backend, max_accuracy_drop=r.max_accuracy_drop, float_accuracy=r.float_accuracy,
        sensitivity=[rs.SensitivityRow.model_validate(x, from_attributes=True) for x in r.sensitivity],
        steps=[rs.PartialStep(step=s.step, scheme=s.scheme, out_of_int8=list(s.out_of_int8), layers=list(s.layers),
                              size_bytes=s.size_bytes, accuracy=s.accuracy, accuracy_drop=s.accuracy_drop,
                              latency_p50_ms=s.latency_p50_ms, within_budget=s.within_budget, metric=s.metric,
                              figure=s.figure) for s in r.steps],
        chosen=r.chosen, met=r.met)


def _mcu(m: McuReport, artifact: str) -> rs.McuStage:
    d = m.diff_at
    device = None
    if m.estimated_device_latency_ms is not None and m.macs_per_second is not None:
        device = rs.DeviceLatency(estimate_ms=m.estimated_device_latency_ms, macs=m.macs, macs_per_second=m.macs_per_second)
    return rs.McuStage(
        model=artifact, core=m.core, model_bytes=m.model_bytes, ops=list(m.ops), op_counts=dict(m.op_counts),
        macs=m.macs, params=m.params, arena_bytes=m.arena_bytes, arena_with_margin=m.arena_with_margin,
        arena_probes=m.arena_probes, input_bytes=m.input_bytes, output_bytes=m.output_bytes, io_bytes=m.io_bytes,
        flash_bytes=m.flash_bytes, ram_bytes=m.ram_bytes, flash_limit_bytes=m.flash_limit_bytes,
        ram_limit_bytes=m.ram_limit_bytes, samples_compared=m.samples_compared, sample_source=m.sample_source,
        bit_exact=m.bit_exact, max_abs_diff=m.max_abs_diff,
        diff_at=None if d is None else rs.DiffAt(sample=d.sample, output=d.output, element=list(d.element)),
        mismatched_elements=m.mismatched_elements, reference_kernels_bit_exact=m.reference_kernels_bit_exact,
        comparison_note=m.comparison_note(), host_tflm_latency_ms=m.host_tflm_latency_ms, device_latency=device,
        c_header=None if m.c_header is None else Path(m.c_header).name,
        c_source=None if m.c_source is None else Path(m.c_source).name)


def _agreement(a: Agreement) -> rs.FirmwareAgreement:
    return rs.FirmwareAgreement(reference=a.reference, bit_exact=a.bit_exact, mismatched_elements=a.mismatched_elements,
                                max_abs_diff=a.max_abs_diff, description=a.describe())


def _firmware(f: FirmwareResult, artifact: str) -> rs.FirmwareStage:
    e, d, lat = f.elf, f.device, f.latency
    lo, med, hi = f.instructions()
    return rs.FirmwareStage(
        model=artifact, core=f.core, qemu_machine=f.machine, samples=f.samples, sample_source=f.sample_source,
        elf=rs.FirmwareElf(text=e.text, rodata=e.rodata, data=e.data, bss=e.bss, heap=e.heap, stack=e.stack,
                           flash_bytes=e.flash_bytes, ram_bytes=e.ram_bytes, flash_split=dict(e.flash_split),
                           ram_split=dict(e.ram_split)),
        flash_limit_bytes=f.flash_limit_bytes, ram_limit_bytes=f.ram_limit_bytes,
        arena=rs.FirmwareArena(target_bytes=d.arena_bytes, target_minus_one_fails=d.arena_below_fails,
                               host_bytes=f.host_arena_bytes, tflm_arena_used_bytes=d.arena_used_bytes,
                               reserved_bytes=d.arena_reserved_bytes, trials=d.arena_trials),
        stack_used_bytes=d.stack_used_bytes, stack_reserved_bytes=d.stack_reserved_bytes,
        instructions=rs.InstructionCounts(min=lo, median=med, max=hi, per_sample=list(d.instructions)),
        device_latency=None if lat is None else rs.FirmwareLatency(
            min_ms=round(lat.min_ms, 4), median_ms=round(lat.median_ms, 4), max_ms=round(lat.max_ms, 4), cpi=lat.cpi,
            cpi_source=lat.cpi_source, clock_mhz=lat.clock_mhz, clock_source=lat.clock_source),
        bit_exact=f.vs_host_tflm.bit_exact, vs_host_tflm=_agreement(f.vs_host_tflm), vs_litert=_agreement(f.vs_litert),
        tflm_library_cached=f.library.cached, build_seconds=round(f.build_seconds, 2),
        qemu_seconds=round(f.qemu_seconds, 2))


QUANT_BITS = {"int8": 8, "int16x8": 8, "float16": 16, "dynamic": 8, "none": 32}  # weight bits per scheme


def _composition(steps: tuple[rs.CompositionStep, ...], params: int | None, baseline: rs.Variant,
                 optimized: rs.Variant, artifact: Path) -> rs.Composition:
    """Each step's share: compression = original/final bytes, pruning = params ratio, quantization bit ratio,
    and the zeros of the final artifact's filters (read back; zeros are not removed parameters)."""
    if not steps:
        steps = (rs.CompositionStep(stage="float", params=params or 0,
                                    accuracy=None if baseline.accuracy is None else baseline.accuracy.value),)
    final_params = steps[-1].params
    before = steps[0].params
    bits = QUANT_BITS.get(optimized.artifact.scheme.split("+")[0], 8)
    quantized = rs.CompositionStep(stage="quantize", params=final_params,
                                   accuracy=None if optimized.accuracy is None else optimized.accuracy.value)
    weights = zeros = None
    if optimized.artifact.format == "tflite":
        from edgeopt.sparsify.artifact import weight_zeros

        found = weight_zeros(artifact.read_bytes())
        weights, zeros = sum(w.elements for w in found), sum(w.zeros for w in found)
    return rs.Composition(compression_ratio=baseline.artifact.bytes / optimized.artifact.bytes,
                          pruning_ratio=before / final_params if final_params else None,
                          quantization_bit_ratio=f"32/{bits}", params_before=before or None,
                          params_after=final_params or None, kernel_weights=weights, zero_weights=zeros,
                          sparsity=None if not weights or zeros is None else zeros / weights,
                          steps=[*steps, quantized])


def _energy(f: EnergyFigure | None) -> rs.EnergyStage | None:
    if f is None:
        return None
    b = f.battery
    return rs.EnergyStage(
        method=f.method, joules_per_inference=f.joules_per_inference, millijoules_per_inference=f.millijoules_per_inference,
        inferences_per_joule=f.inferences_per_joule, power_mw=f.power_mw, power_source=f.power_source,
        latency_ms=f.latency_ms, latency_source=f.latency_source, note=f.note,
        battery=None if b is None else rs.BatteryInfo(
            battery=b.battery, capacity_mah=b.capacity_mah, voltage_v=b.voltage_v,
            inferences_per_second=b.inferences_per_second, average_power_mw=b.average_power_mw, hours=b.hours,
            days=b.days, label=b.label))
