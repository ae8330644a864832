"""`edgeopt build`: load -> [prune] -> [cluster] -> convert -> quantize -> validate -> benchmark -> report.

Everything is written into a staging folder inside --out and moved into place only
when the build is complete. Budgets are checked last; a broken budget still
writes the artifacts and the report (the CLI then exits 3).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import __version__
from edgeopt.data.datasets import Dataset, check_against_input, load_dataset, sibling
from edgeopt.errors import BudgetViolation, InputError
from edgeopt.pipeline.atomic import Staging, prepare_output, write_bytes_atomic
from edgeopt.pipeline.source import Source, open_source
from edgeopt.profiles import ResolvedProfile, load_profile
from edgeopt.profiles.schema import OutputFormat, Profile, Scheme
from edgeopt.report import schema as rs

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    model: Path
    target: str
    out: Path
    calib: Path | None = None
    eval: Path | None = None
    random_calibration: bool = False
    unsafe_load: bool = False
    threads: int | None = None  # overrides the profile
    benchmark: bool = True
    command_line: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildResult:
    report: rs.Report
    out: Path
    files: tuple[Path, ...]
    violations: tuple[BudgetViolation, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.violations


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            h.update(f.read_bytes())
        return h.hexdigest()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _noop(_: str) -> None:
    return None


def build(req: BuildRequest, progress: Progress = _noop) -> BuildResult:
    started = time.perf_counter()
    resolved = load_profile(req.target)
    profile = resolved.profile
    source = open_source(req.model, req.unsafe_load)
    _check_format_fits(source, profile)
    calib, calib_source, notes = _calibration(req, source, profile)
    evalset = _eval(req, source)
    out = prepare_output(req.out)  # only once every input is known to be good
    with Staging(out) as stage:
        progress("converting")
        base_name, opt_name = _convert(source, profile, calib, stage)
        progress("validating accuracy")
        base_acc, opt_acc = _accuracy(source, stage, base_name, opt_name, evalset)
        if evalset is None:
            notes.append("accuracy unknown: no eval data (give --eval data.npz or put NAME.eval.npz next to the model)")
        if calib_source == "random":
            notes.append("calibrated on random data: int8 ranges do not reflect real inputs" +
                         ("; accuracy is unknown" if evalset is None else "; see the measured accuracy"))
        base_lat = opt_lat = None
        if req.benchmark:
            progress("benchmarking")
            base_lat, opt_lat = _latency(stage, base_name, opt_name, profile, req.threads)
        report = _report(req, resolved, source, calib_source, calib, evalset, stage, base_name, opt_name,
                         base_acc, opt_acc, base_lat, opt_lat, notes, started)
        violations = tuple(BudgetViolation(b.name, b.limit, b.actual or 0.0, b.unit) for b in report.budgets if b.ok is False)
        from edgeopt.report.render import to_markdown

        write_bytes_atomic(stage.path("report.md"), to_markdown(report).encode())
        write_bytes_atomic(stage.path("report.json"), (report.model_dump_json(indent=2) + "\n").encode())
        files = stage.commit([opt_name, base_name, "report.md", "report.json"])
    return BuildResult(report, out, tuple(files), violations)


def _check_format_fits(source: Source, profile: Profile) -> None:
    if source.keras_model is None and profile.convert.format is OutputFormat.TFLITE:
        raise InputError(f"profile '{profile.name}' makes TFLite, which needs a Keras/TensorFlow model; "
                         "an ONNX model can target an ONNX profile such as edge-server")


def _calibration(req: BuildRequest, source: Source, profile: Profile) -> tuple[np.ndarray | None, str, list[str]]:
    notes: list[str] = []
    needs = profile.quantize.scheme in (Scheme.INT8, Scheme.INT16X8)
    path = req.calib or sibling(req.model, "calibration")
    n = profile.quantize.calibration_samples
    if path is not None:
        ds = check_against_input(load_dataset(path, "calibration"), source.input_shape, "calibration")
        if ds.count < n:
            notes.append(f"calibration used all {ds.count} samples given (profile asks for {n})")
        return ds.x[:n], str(path), notes
    if not needs:
        return None, "none", notes
    if not req.random_calibration:
        raise InputError(f"scheme '{profile.quantize.scheme}' needs calibration data: give --calib data.npz "
                         f"(array x), put {req.model.stem}.calib.npz next to the model, or pass --random-calibration")
    shape = tuple(1 if d is None else d for d in source.input_shape[1:])
    rng = np.random.default_rng(0)
    return rng.random((min(n, 100),) + shape, dtype=np.float32), "random", notes


def _eval(req: BuildRequest, source: Source) -> Dataset | None:
    path = req.eval or sibling(req.model, "eval")
    if path is None:
        return None
    return check_against_input(load_dataset(path, "eval"), source.input_shape, "eval")


def _convert(source: Source, profile: Profile, calib: np.ndarray | None, stage: Staging) -> tuple[str, str]:
    """Write the float baseline and the optimized artifact into the staging folder."""
    stem = source.path.stem if source.path.is_file() else source.path.name
    q = profile.quantize
    if profile.convert.format is OutputFormat.TFLITE:
        from edgeopt.convert.savedmodel import export_saved_model
        from edgeopt.convert.tflite import to_tflite
        from edgeopt.quantize.tflite import TfliteRecipe, converter_setup

        sm = export_saved_model(source.keras_model, stage.dir / "_work" / "saved_model", batch=1)
        base, opt = f"{stem}.float.tflite", f"{stem}.tflite"
        write_bytes_atomic(stage.path(base), to_tflite(sm))
        recipe = TfliteRecipe(q.scheme, q.input_type, q.output_type, q.per_channel, calib)
        write_bytes_atomic(stage.path(opt), to_tflite(sm, converter_setup(recipe)))
        return base, opt
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

    base, opt = f"{stem}.float.onnx", f"{stem}.onnx"
    if source.keras_model is not None:
        from edgeopt.convert.onnx import keras_to_onnx

        write_bytes_atomic(stage.path(base), keras_to_onnx(source.keras_model, profile.convert.opset))
    else:
        assert source.onnx_path is not None
        write_bytes_atomic(stage.path(base), source.onnx_path.read_bytes())
    recipe = OnnxRecipe(q.scheme, q.per_channel, q.calibration_method, q.onnx_format, calib)
    quantize_onnx(stage.path(base), stage.path(opt), recipe)
    return base, opt


def _accuracy(source: Source, stage: Staging, base: str, opt: str, evalset: Dataset | None) -> tuple[Any, Any]:
    if evalset is None:
        return None, None
    from edgeopt.validate.accuracy import compare, predict

    reference = source.predict(evalset.x)
    results = []
    for name in (base, opt):
        outputs = predict(stage.path(name), evalset.x)
        results.append(compare(outputs, reference, evalset.y, source.reference_name))
    return results[0], results[1]


def _latency(stage: Staging, base: str, opt: str, profile: Profile, threads: int | None) -> tuple[Any, Any]:
    from edgeopt.benchmark.protocol import BenchSettings, run_benchmark

    b = profile.benchmark
    settings = BenchSettings(threads=profile.runtime.threads if threads is None else threads,
                             xnnpack=profile.runtime.xnnpack, warmup_runs=b.warmup_runs,
                             warmup_seconds=b.warmup_seconds, runs=b.runs, min_seconds=b.min_seconds)
    return run_benchmark(stage.path(base), settings), run_benchmark(stage.path(opt), settings)


def _artifact(stage: Staging, name: str, fmt: str, scheme: str) -> rs.ArtifactInfo:
    p = stage.path(name)
    return rs.ArtifactInfo(path=name, format=fmt, scheme=scheme, bytes=p.stat().st_size, sha256=sha256_file(p))


def _acc_info(a: Any) -> rs.AccuracyInfo | None:
    if a is None:
        return None
    return rs.AccuracyInfo(metric=a.metric, reference=a.reference, value=a.value, reference_value=a.reference_value,
                           drop=a.drop, agreement=a.agreement, snr_db=a.snr_db, samples=a.samples)


def _lat_info(r: Any) -> rs.LatencyInfo | None:
    if r is None:
        return None
    s = r.latency
    return rs.LatencyInfo(p50=s.p50, p90=s.p90, p99=s.p99, mean=s.mean, std=s.std, min=s.min, max=s.max, runs=s.runs,
                          warmup=r.warmup, threads=r.threads, runtime=r.runtime, runtime_version=r.runtime_version,
                          delegate=r.delegate, init_ms=r.init_ms, where="local")


def _budgets(profile: Profile, opt: rs.Variant, notes: list[str]) -> list[rs.Budget]:
    b = profile.budgets
    out: list[rs.Budget] = []
    if b.max_model_kb is not None:
        kb = opt.artifact.bytes / 1024
        out.append(rs.Budget(name="max_model_kb", limit=b.max_model_kb, actual=round(kb, 3), unit="KiB", ok=kb <= b.max_model_kb))
    if b.max_latency_ms is not None:
        p90 = None if opt.latency_ms is None else opt.latency_ms.p90
        if p90 is None:
            notes.append("max_latency_ms not checked: the benchmark was skipped")
        out.append(rs.Budget(name="max_latency_ms", limit=b.max_latency_ms, actual=p90, unit="ms (p90)",
                             ok=None if p90 is None else p90 <= b.max_latency_ms))
    if b.max_accuracy_drop is not None:
        drop = None if opt.accuracy is None else opt.accuracy.drop
        if drop is None:
            notes.append("max_accuracy_drop not checked: no eval data")
        out.append(rs.Budget(name="max_accuracy_drop", limit=b.max_accuracy_drop, actual=drop, unit="points",
                             ok=None if drop is None else drop <= b.max_accuracy_drop))
    return out


def _report(req: BuildRequest, resolved: ResolvedProfile, source: Source, calib_source: str, calib: np.ndarray | None,
            evalset: Dataset | None, stage: Staging, base: str, opt: str, base_acc: Any, opt_acc: Any,
            base_lat: Any, opt_lat: Any, notes: list[str], started: float) -> rs.Report:
    profile = resolved.profile
    fmt = str(profile.convert.format)
    baseline = rs.Variant(artifact=_artifact(stage, base, fmt, "none"), accuracy=_acc_info(base_acc), latency_ms=_lat_info(base_lat))
    optimized = rs.Variant(artifact=_artifact(stage, opt, fmt, str(profile.quantize.scheme)), accuracy=_acc_info(opt_acc),
                           latency_ms=_lat_info(opt_lat))
    budgets = _budgets(profile, optimized, notes)
    params, macs = source.params_and_macs()
    lat_ratio = None if (base_lat is None or opt_lat is None) else opt_lat.latency.p50 / base_lat.latency.p50
    return rs.Report(
        tool=rs.Tool(version=__version__),
        target=rs.Target(name=profile.name, profile_sha256=resolved.sha256, device_class=profile.device_class),
        input=rs.InputInfo(path=str(req.model), sha256=sha256_file(req.model), format=str(source.format),
                           params=params, macs=macs),
        calibration=rs.Calibration(source=calib_source, samples=0 if calib is None else int(calib.shape[0])),
        eval_data=None if evalset is None else str(evalset.path),
        baseline=baseline, optimized=optimized,
        ratios=rs.Ratios(size=optimized.artifact.bytes / baseline.artifact.bytes, latency_p50=lat_ratio),
        budgets=budgets, stages={}, notes=notes, build_seconds=round(time.perf_counter() - started, 3),
        ok=all(b.ok is not False for b in budgets),
    )


def report_json(report: rs.Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)
