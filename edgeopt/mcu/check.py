"""The MCU check: ops, integer-only, exact arena, TFLM vs LiteRT, host latency, budgets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from edgeopt.analysis.tflite_graph import TfliteGraph, read_tflite
from edgeopt.data.tensors import Batch
from edgeopt.energy.figure import EnergyFigure
from edgeopt.errors import ModelFileError, UnsupportedOpError
from edgeopt.load.formats import ModelFormat, detect_format
from edgeopt.mcu.arena import ArenaMeasurement, measure_arena, with_margin
from edgeopt.mcu.budget import check_budget
from edgeopt.mcu.c_export import tensor_bytes
from edgeopt.mcu.integer import check_integer_only
from edgeopt.mcu.ops import check_ops
from edgeopt.mcu.report import McuReport
from edgeopt.mcu.variables import STATEFUL_FRAMES, resource_variables
from edgeopt.profiles.schema import Profile

DEFAULT_SAMPLES = 8


@dataclass(frozen=True)
class Verified:
    """A model that passed the static checks, with its measured arena."""

    path: Path
    graph: TfliteGraph
    arena: ArenaMeasurement
    arena_with_margin: int
    margin_note: str
    io_findings: tuple[str, ...] = ()  # I/O dtypes that differ from the profile (only when not strict)


def _read(path: Path) -> TfliteGraph:
    path = Path(path)
    fmt = detect_format(path)  # a missing, non-regular or mislabelled file is refused here
    if fmt is not ModelFormat.TFLITE:
        msg = f"{path}: a {fmt} model; TFLite Micro runs .tflite files (edgeopt build --target embedded-mcu makes one)"
        raise ModelFileError(msg)
    return read_tflite(path)


def verify_static(path: Path, profile: Profile, *, strict_io: bool = True) -> tuple[TfliteGraph, tuple[str, ...]]:
    """Op support and integer-only checks; raises UnsupportedOpError (exit 2) naming the ops.

    `strict_io` (what `edgeopt build` needs: it makes the profile's I/O types) refuses I/O of another type than
    the profile's; otherwise such I/O (a deployed model with uint8 output, float32 input quantized by its first
    op, say) is returned as findings and the model is measured with its own types (`mcu check`, `mcu run`).
    """
    graph = _read(path)
    resource_variables(graph, Path(path).name)  # a VAR_HANDLE TFLM cannot look up: refused before TFLM runs
    ops = check_ops(graph)
    integer = check_integer_only(graph, profile)
    findings: tuple[str, ...] = ()
    if not strict_io:  # other I/O types (and the ops converting them): reported by the caller, not refused
        findings, integer = integer.io_issues, integer.io_as_found()
    problems, names = [], list(ops.unsupported)
    if not ops.ok:
        problems.append(f"TFLite Micro lacks {', '.join(ops.unsupported)} ({'; '.join(ops.hints)})")
    if not integer.ok:
        problems.append(integer.describe())
        names += sorted({label.split("#")[0] for label in integer.float_ops + integer.int16_ops})
        if integer.float_ops:
            problems.append(f"profile '{profile.name}' needs an int8 model: quantize full-int8 (edgeopt build --target {profile.name})")
    if problems:
        raise UnsupportedOpError(f"{path}: not deployable on {profile.name}: " + "; ".join(problems), tuple(dict.fromkeys(names)))
    return graph, findings


def measure(path: Path, profile: Profile, *, strict_io: bool = True) -> Verified:
    graph, findings = verify_static(path, profile, strict_io=strict_io)
    try:
        arena = measure_arena(Path(path))
    except ModelFileError as exc:
        dynamic = [t for t in graph.inputs if any(d < 0 for d in t.shape_signature)]
        if dynamic and "crash" in str(exc) and "SHAPE" in graph.op_names:
            t = dynamic[0]
            msg = (
                f"{path}: TFLite Micro crashed on the model: input '{t.name}' has a dynamic dimension "
                f"{list(t.shape_signature)} and the graph computes shapes at run time (SHAPE op); "
                "export with a fixed batch of 1 (edgeopt build does)"
            )
            raise ModelFileError(
                msg) from None
        tensors = graph.main.tensors
        tiny = [op for op in graph.main.operators if op.op in ("SOFTMAX", "LOGISTIC", "TANH") and op.inputs[0] >= 0
                and tensors[op.inputs[0]].scale and tensors[op.inputs[0]].scale[0] < 1e-6]
        if tiny and "crash" in str(exc):
            t = tensors[tiny[0].inputs[0]]
            msg = (
                f"{path}: TFLite Micro aborted on {tiny[0].op}#{tiny[0].index}: its input scale {t.scale[0]:.3g} is degenerate "
                "(near-constant activations, often untrained weights or calibration data that does not exercise the model); "
                "calibrate on real samples"
            )
            raise ModelFileError(
                msg) from None
        raise
    m = profile.mcu
    total = with_margin(arena.arena_bytes, m.arena_margin_percent, m.arena_margin_bytes)
    note = f"+ {m.arena_margin_percent:g} % + {m.arena_margin_bytes} B margin, rounded up to 16"
    return Verified(Path(path), graph, arena, total, note, findings)


def check_model(path: Path, profile: Profile, *, samples: Batch | None = None, sample_source: str = "",
                sample_count: int | None = None, compare: bool = True, verified: Verified | None = None) -> McuReport:
    """Run every MCU check on `path` for `profile`; budgets are reported in `violations`, not raised.

    `sample_count` None: 8 samples, or 20 consecutive frames for a stateful model (resource variables): one
    interpreter per runtime, state carried, every frame compared.

    An existing model is measured even when its integer I/O types differ from the profile's: the difference is
    reported in `io_findings`. (`edgeopt build` passes a strictly `verified` model: it makes the profile's types.)
    """
    v = verified or measure(path, profile, strict_io=False)
    graph = v.graph
    variables = resource_variables(graph, Path(path).name)
    if sample_count is None:
        sample_count = STATEFUL_FRAMES if variables.stateful else DEFAULT_SAMPLES
    in_bytes = sum(tensor_bytes(t) for t in graph.inputs)
    out_bytes = sum(tensor_bytes(t) for t in graph.outputs)
    budget = check_budget(profile, graph.size_bytes, v.arena_with_margin, in_bytes + out_bytes)

    comparison, host_ms, n, ref_exact = None, None, 0, None
    if compare:
        from edgeopt.mcu.compare import compare as compare_outputs
        from edgeopt.mcu.compare import litert_outputs, make_feeds
        from edgeopt.mcu.tflm import run_tflm
        from edgeopt.runtime import open_runner
        from edgeopt.runtime.base import RunnerOptions

        runner = open_runner(v.path, RunnerOptions(threads=1, xnnpack=False))
        feeds = make_feeds(runner.inputs, samples, sample_count, keys=runner.input_keys)
        n = len(feeds)
        tflm = run_tflm(v.path, v.arena.arena_bytes, feeds)  # the exact minimum, on real data
        _, ref = litert_outputs(v.path, feeds)
        comparison = compare_outputs(tflm.outputs, ref)
        if not comparison.bit_exact:  # whose rounding is it? most TFLM kernels derive from LiteRT's reference ones
            ref_exact = compare_outputs(tflm.outputs, litert_outputs(v.path, feeds, reference_kernels=True)[1]).bit_exact
        host_ms = statistics.median(tflm.latency_ms) if tflm.latency_ms else None
        if not sample_source:
            sample_source = "random (seed 0)" if samples is None else "given samples"

    rate = profile.mcu.sustained_macs_per_second
    device_ms = (graph.macs / rate * 1000.0) if rate and graph.macs else None
    return McuReport(
        model=str(path), profile=profile.name, core=profile.mcu.core, model_bytes=graph.size_bytes,
        ops=graph.op_names, op_counts=graph.op_counts, unsupported_ops=(), macs=graph.macs, params=graph.params,
        arena_bytes=v.arena.arena_bytes, arena_with_margin=v.arena_with_margin, arena_probes=v.arena.probes,
        input_bytes=in_bytes, output_bytes=out_bytes, io_bytes=in_bytes + out_bytes,
        flash_bytes=budget.flash_bytes, ram_bytes=budget.ram_bytes,
        flash_limit_bytes=budget.flash_limit_bytes, ram_limit_bytes=budget.ram_limit_bytes,
        samples_compared=n, sample_source=sample_source if compare else "",
        bit_exact=comparison.bit_exact if comparison else None,
        max_abs_diff=comparison.max_abs_diff if comparison else None,
        diff_at=comparison.where if comparison else None,
        mismatched_elements=comparison.mismatched_elements if comparison else None,
        reference_kernels_bit_exact=ref_exact,
        host_tflm_latency_ms=host_ms,
        estimated_device_latency_ms=device_ms,
        macs_per_second=rate if rate and graph.macs else None,
        violations=budget.violations,
        io_findings=v.io_findings,
        io_types=(tuple(t.dtype for t in graph.inputs), tuple(t.dtype for t in graph.outputs)),
        resource_variables=variables.count,
        energy=mcu_energy(profile, device_ms),
    )


def mcu_energy(profile: Profile, device_ms: float | None) -> EnergyFigure:
    """The device's energy per inference: profile active power x the MAC-rate latency estimate (labelled).

    A host energy counter says nothing about the microcontroller, so an MCU figure is always an estimate."""
    from edgeopt.energy import LatencySource, estimate_energy

    return estimate_energy(profile.energy, device_ms, LatencySource.MAC_RATE if device_ms is not None else None)
