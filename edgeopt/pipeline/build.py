"""`edgeopt build`: load -> prune -> cluster -> convert -> quantize -> validate -> benchmark -> report.

Everything is written into a staging folder inside --out and moved into place only
when the build is complete. Budgets are checked last; a broken budget still
writes the artifacts and the report (the CLI then exits 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.atomic import Staging, prepare_output, write_bytes_atomic
from edgeopt.data.datasets import Dataset, check_against_input, load_dataset, sibling
from edgeopt.errors import BudgetViolation, InputError
from edgeopt.load.source import Source, open_source
from edgeopt.pipeline import manifest
from edgeopt.pipeline.artifacts import Artifacts, make_artifacts
from edgeopt.pipeline.compress import compress, compression_stages
from edgeopt.pipeline.reporting import BuildOutcome, assemble_report
from edgeopt.profiles import load_profile
from edgeopt.profiles.schema import OutputFormat, Profile, Scheme
from edgeopt.report import schema as rs
from edgeopt.vocabulary import DeviceClass

if TYPE_CHECKING:
    from edgeopt.benchmark.protocol import BenchResult
    from edgeopt.mcu.report import McuReport
    from edgeopt.validate.accuracy import AccuracyResult

Progress = Callable[[str], None]
NO_LABELS_NOTE = "eval data has no labels: top-1 not measured; agreement with the float model is reported"


@dataclass(frozen=True)
class BuildRequest:
    model: Path
    target: str
    out: Path
    calib: Path | None = None
    eval: Path | None = None
    train: Path | None = None  # fine-tuning data for pruning / clustering
    random_calibration: bool = False
    allow_no_finetune: bool = False  # prune without fine-tuning data
    unsafe_load: bool = False
    threads: int | None = None  # overrides the profile
    benchmark: bool = True
    remote: Any = None  # edgeopt.benchmark.remote.RemoteSpec: time artifacts on a device
    c_name: str = "g_model"  # C array name for MCU targets
    command_line: tuple[str, ...] = ()
    force: bool = False  # rebuild even when OUT/manifest.json shows the same inputs


@dataclass(frozen=True)
class BuildResult:
    report: rs.Report
    out: Path
    files: tuple[Path, ...]
    violations: tuple[BudgetViolation, ...] = field(default=())
    skipped: bool = False  # OUT already held this exact build (manifest.json); nothing was rebuilt

    @property
    def ok(self) -> bool:
        return not self.violations


def _noop(_: str) -> None:
    return None


def build(req: BuildRequest, progress: Progress = _noop) -> BuildResult:
    started = time.perf_counter()
    resolved = load_profile(req.target)
    profile = resolved.profile
    accuracy_control = profile.partial is not None and profile.partial.accuracy_control  # [partial] checked at load
    inputs = manifest.build_inputs(req, resolved)
    cached = None if req.force else manifest.up_to_date(req.out, inputs)
    unchanged = None if cached is None else _unchanged(req.out, *cached)
    if unchanged is not None:
        return unchanged
    progress("loading the model")  # at once: importing TensorFlow for a Keras model takes seconds
    source = open_source(req.model, req.unsafe_load)
    _check_format_fits(source, profile)
    notes: list[str] = []
    calib, calib_source = _calibration(req, source, profile, notes)
    evalset = _dataset(req.eval, req.model, "eval", source)
    train = _dataset(req.train, req.model, "train", source)
    if evalset is not None and evalset.y is None:
        notes.append(NO_LABELS_NOTE)
    if accuracy_control and evalset is None:
        notes.append("accuracy control ([partial]) was skipped: it needs eval data (--eval or NAME.eval.npz)")
    out = prepare_output(req.out)  # only once every input is known to be good
    with Staging(out) as stage:  # a failure from here on removes an --out it created
        reference = None if evalset is None else source.predict(evalset.x)
        model = source.keras_model
        compressed = None
        if model is not None and (enabled := compression_stages(profile)):
            progress(" and ".join(enabled))
            compressed = compress(model, profile, train, evalset, req.allow_no_finetune)
            model = compressed.model
        progress("converting and quantizing")
        arts = make_artifacts(source, model, profile, calib, evalset, reference, stage)
        if arts.note:
            notes.append(arts.note)
        progress("validating accuracy")
        accuracy = _accuracy(source, stage, arts, evalset, reference)
        latency = None
        if req.benchmark:
            progress("benchmarking" + (f" on {req.remote.host}" if req.remote is not None else ""))
            latency = _latency(stage, arts, profile, req)
            notes.extend(_refusals(latency, (arts.baseline, arts.optimized)))
        extra_files: list[str] = []
        mcu = None
        if profile.device_class is DeviceClass.EMBEDDED_MCU and profile.convert.format is OutputFormat.TFLITE:
            progress("verifying in TFLite Micro")
            mcu, extra_files = _mcu(stage, arts, profile, req, evalset, calib)
        energy = None
        if mcu is None:  # an MCU's figure comes with its check (device estimate); here: this host or the remote device
            from edgeopt.energy.artifact import artifact_energy

            energy = artifact_energy(stage.path(arts.optimized), profile,
                                     None if latency is None else latency[1].latency.p50, remote=req.remote is not None,
                                     threads=profile.runtime.threads or 1, progress=progress)
        report = assemble_report(BuildOutcome(
            model=req.model, resolved=resolved, source=source, calibration=calib_source,
            calibration_samples=0 if calib is None else int(calib.shape[0]),
            eval_data=None if evalset is None else evalset.path, folder=stage.dir, artifacts=arts, accuracy=accuracy,
            latency=latency, compressed=compressed, mcu=mcu, notes=tuple(notes),
            build_seconds=time.perf_counter() - started, energy=energy))
        violations = tuple(BudgetViolation(b.name, b.limit, b.actual or 0.0, b.unit) for b in report.budgets if b.ok is False)
        from edgeopt.report.render import to_markdown

        write_bytes_atomic(stage.path("report.md"), to_markdown(report).encode())
        write_bytes_atomic(stage.path("report.json"), (report.model_dump_json(indent=2) + "\n").encode())
        names = [arts.optimized, arts.baseline, *extra_files, "report.md", "report.json"]
        names.append(manifest.write(stage, inputs, names, violations, req.command_line))
        files = stage.commit(names)  # manifest.json last: it only ever describes complete files
    return BuildResult(report, out, tuple(files), violations)


def _unchanged(out: Path, data: dict[str, Any], files: list[Path]) -> BuildResult | None:
    """The build already in OUT, or None when its report.json is of another schema version (rebuild it)."""
    from pydantic import ValidationError

    try:
        report = rs.Report.model_validate_json((Path(out) / "report.json").read_text("utf-8"))
    except ValidationError:
        return None
    violations = tuple(BudgetViolation(v["name"], v["limit"], v["actual"], v["unit"])
                       for v in data.get("budget_violations", ()))
    return BuildResult(report, Path(out).resolve(), tuple(files), violations, skipped=True)


def _check_format_fits(source: Source, profile: Profile) -> None:
    from edgeopt.convert.registry import converter_for

    converter = converter_for(profile.convert.format)
    if source.keras_model is None and not converter.from_onnx:
        msg = (
            f"profile '{profile.name}' makes {converter.label}, which needs a Keras/TensorFlow model; "
            "an ONNX model can target an ONNX profile such as edge-server"
        )
        raise InputError(msg)
    if source.keras_model is None and (profile.prune.ratio or profile.prune.macs_reduction or profile.cluster is not None
                                       or profile.sparsity is not None):
        msg = (
            f"profile '{profile.name}' prunes, sparsifies or clusters, which needs a Keras model; ONNX models "
            "can only be quantized (remove [prune]/[sparsity]/[cluster] from the profile)"
        )
        raise InputError(msg)


def _calibration(req: BuildRequest, source: Source, profile: Profile, notes: list[str]) -> tuple[np.ndarray | None, str]:
    needs = profile.quantize.scheme in (Scheme.INT8, Scheme.INT16X8)
    path = req.calib or sibling(req.model, "calibration")
    n = profile.quantize.calibration_samples
    if path is not None:
        ds = check_against_input(load_dataset(path, "calibration"), source.input_shape, "calibration")
        if ds.count < n:
            notes.append(f"calibration used all {ds.count} samples given (profile asks for {n})")
        return ds.x[:n], str(path)
    if not needs:
        return None, "none"
    if not req.random_calibration:
        msg = (
            f"scheme '{profile.quantize.scheme}' needs calibration data: give --calib data.npz "
            f"(array x), put {req.model.stem}.calib.npz next to the model, or pass --random-calibration"
        )
        raise InputError(msg)
    shape = tuple(1 if d is None else d for d in source.input_shape[1:])
    rng = np.random.default_rng(0)
    return rng.random((min(n, 100),) + shape, dtype=np.float32), "random"


def _dataset(given: Path | None, model: Path, role: str, source: Source) -> Dataset | None:
    path = given or sibling(model, role)
    if path is None:
        return None
    return check_against_input(load_dataset(path, role), source.input_shape, role)


def _accuracy(source: Source, stage: Staging, arts: Artifacts, evalset: Dataset | None,
              reference: np.ndarray | None) -> tuple[AccuracyResult, AccuracyResult] | None:
    if evalset is None or reference is None:
        return None
    from edgeopt.validate.accuracy import compare, predict

    base = compare(predict(stage.path(arts.baseline), evalset.x), reference, evalset.y, source.reference_name)
    opt = arts.optimized_accuracy or compare(predict(stage.path(arts.optimized), evalset.x), reference, evalset.y,
                                             source.reference_name)
    return base, opt


def _latency(stage: Staging, arts: Artifacts, profile: Profile, req: BuildRequest) -> tuple[BenchResult, BenchResult]:
    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved

    b = profile.benchmark
    settings = BenchSettings(threads=profile.runtime.threads if req.threads is None else req.threads,
                             xnnpack=profile.runtime.xnnpack, graph_optimization=profile.runtime.graph_optimization,
                             warmup_runs=b.warmup_runs, warmup_seconds=b.warmup_seconds, runs=b.runs,
                             min_seconds=b.min_seconds)
    paths = [stage.path(arts.baseline), stage.path(arts.optimized)]
    if req.remote is not None:
        from edgeopt.benchmark.remote import run_remote

        results = run_remote(paths, settings, req.remote)
    else:
        results = run_interleaved(paths, settings)
    return results[0], results[1]


def _refusals(results: tuple[BenchResult, BenchResult], names: tuple[str, str]) -> list[str]:
    from edgeopt.runtime.litert import XNNPACK_REFUSED

    return [f"XNNPACK refused to prepare {name} (often an int8 scale from an activation that was constant on the "
            "calibration data); its latency was measured on LiteRT's builtin kernels"
            for r, name in zip(results, names, strict=True) if r.delegate == XNNPACK_REFUSED]


def _mcu(stage: Staging, arts: Artifacts, profile: Profile, req: BuildRequest, evalset: Dataset | None,
         calib: np.ndarray | None) -> tuple[McuReport, list[str]]:
    from edgeopt.mcu.deliver import deliver

    samples = evalset.x[:32] if evalset is not None else (calib[:32] if calib is not None else None)
    source = "eval data" if evalset is not None else ("calibration data" if calib is not None else "")
    report = deliver(stage.path(arts.optimized), profile, samples, stage.dir, name=req.c_name, sample_source=source)
    files = [Path(p).name for p in (report.c_header, report.c_source) if p]
    return report, files
