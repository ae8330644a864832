"""Build the Report value from the stage results (never from logs)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgeopt import __version__
from edgeopt.data.datasets import Dataset
from edgeopt.errors import BudgetViolation
from edgeopt.pipeline.atomic import Staging
from edgeopt.pipeline.manifest import sha256_path
from edgeopt.pipeline.source import Source
from edgeopt.profiles import ResolvedProfile
from edgeopt.profiles.schema import Profile
from edgeopt.report import schema as rs


def _artifact(stage: Staging, name: str, fmt: str, scheme: str) -> rs.ArtifactInfo:
    p = stage.path(name)
    return rs.ArtifactInfo(path=name, format=fmt, scheme=scheme, bytes=p.stat().st_size, sha256=sha256_path(p))


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
                          delegate=r.delegate, init_ms=r.init_ms, where=getattr(r, "device", "local") or "local")


def _budgets(profile: Profile, opt: rs.Variant, mcu: tuple[BudgetViolation, ...], stages: dict[str, Any],
             notes: list[str], lat_ratio: float | None) -> list[rs.Budget]:
    b = profile.budgets
    out: list[rs.Budget] = []
    if lat_ratio is not None and lat_ratio > 1.0:
        notes.append(f"the optimized artifact is slower than the float baseline: p50 {lat_ratio:.2f}x"
                     + ("" if b.max_latency_ratio is None else f" (max_latency_ratio {b.max_latency_ratio:g})"))
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
    if b.max_accuracy_drop is not None:
        drop = None if opt.accuracy is None else opt.accuracy.drop
        if drop is None:
            notes.append("max_accuracy_drop not checked: no eval data")
        out.append(rs.Budget(name="max_accuracy_drop", limit=b.max_accuracy_drop, actual=drop, unit="points",
                             ok=None if drop is None else drop <= b.max_accuracy_drop))
    mcu_report = stages.get("mcu")
    if mcu_report is not None:
        failed = {v.name for v in mcu}
        for v in mcu:
            out.append(rs.Budget(name=v.name, limit=v.limit, actual=v.actual, unit=v.unit, ok=False))
        for name, used, limit in (("flash", mcu_report.get("flash_bytes"), mcu_report.get("flash_limit_bytes")),
                                  ("ram", mcu_report.get("ram_bytes"), mcu_report.get("ram_limit_bytes"))):
            if limit and not any(name in f for f in failed):
                out.append(rs.Budget(name=f"max_{name}_bytes", limit=limit, actual=used, unit="bytes", ok=True))
    return out


def assemble_report(req: Any, resolved: ResolvedProfile, source: Source, calib_source: str, calib: np.ndarray | None,
                    evalset: Dataset | None, stage: Staging, arts: Any, accuracy: tuple[Any, Any] | None,
                    latency: tuple[Any, Any] | None, stages: dict[str, Any], mcu: tuple[BudgetViolation, ...],
                    notes: list[str], started: float) -> rs.Report:
    profile = resolved.profile
    base_acc, opt_acc = accuracy if accuracy else (None, None)
    base_lat, opt_lat = latency if latency else (None, None)
    if evalset is None:
        notes.append("accuracy unknown: no eval data (give --eval data.npz or put NAME.eval.npz next to the model)")
    if calib_source == "random":
        notes.append("calibrated on random data: int8 ranges do not reflect real inputs"
                     + ("; accuracy is unknown" if evalset is None else "; see the measured accuracy"))
    baseline = rs.Variant(artifact=_artifact(stage, arts.baseline, arts.format, "none"), accuracy=_acc_info(base_acc),
                          latency_ms=_lat_info(base_lat))
    optimized = rs.Variant(artifact=_artifact(stage, arts.optimized, arts.format, arts.scheme),
                           accuracy=_acc_info(opt_acc), latency_ms=_lat_info(opt_lat))
    lat_ratio = None if (base_lat is None or opt_lat is None) else opt_lat.latency.p50 / base_lat.latency.p50
    budgets = _budgets(profile, optimized, mcu, stages, notes, lat_ratio)
    params, macs = source.params_and_macs(_macs_shapes(source, calib, evalset, notes))
    if "steps" in stages:
        stages["composition"] = _composition(stages, params, baseline, optimized)
    return rs.Report(
        tool=rs.Tool(version=__version__),
        target=rs.Target(name=profile.name, profile_sha256=resolved.sha256, device_class=profile.device_class),
        input=rs.InputInfo(path=str(req.model), sha256=sha256_path(req.model), format=str(source.format),
                           params=params, macs=macs),
        calibration=rs.Calibration(source=calib_source, samples=0 if calib is None else int(calib.shape[0])),
        eval_data=None if evalset is None else str(evalset.path),
        baseline=baseline, optimized=optimized,
        ratios=rs.Ratios(size=optimized.artifact.bytes / baseline.artifact.bytes, latency_p50=lat_ratio),
        budgets=budgets, stages=stages, notes=notes, build_seconds=round(time.perf_counter() - started, 3),
        ok=all(b.ok is not False for b in budgets),
    )


def _macs_shapes(source: Source, calib: np.ndarray | None, evalset: Dataset | None,
                 notes: list[str]) -> dict[str, tuple[int, ...]] | None:
    """An ONNX source with symbolic dims beyond the batch counts MACs at the size of one eval/calibration sample."""
    if source.onnx_path is None or all(d is not None for d in source.input_shape[1:]):
        return None
    x = evalset.x if evalset is not None else calib
    if x is None:
        notes.append("input MACs count the model's symbolic dimensions as 1: a lower bound")
        return None
    shape = (1, *(int(d) for d in x.shape[1:]))
    notes.append(f"input MACs are for input shape {'x'.join(map(str, shape))} (one sample of the "
                 f"{'eval' if evalset is not None else 'calibration'} data)")
    return {"": shape}


def _composition(stages: dict[str, Any], params: int, baseline: rs.Variant, optimized: rs.Variant) -> dict[str, Any]:
    """Each step's share: compression = original/final bytes, pruning = params ratio, quantization bit ratio."""
    steps = stages["steps"]
    final_params = steps[-1]["params"]
    bits = {"int8": 8, "int16x8": 8, "float16": 16, "dynamic": 8, "none": 32}.get(optimized.artifact.scheme.split("+")[0], 8)
    return {
        "compression_ratio": baseline.artifact.bytes / optimized.artifact.bytes,
        "pruning_ratio": params / final_params if final_params else None,
        "quantization_bit_ratio": f"32/{bits}",
        "accuracy_after": {s["stage"]: s["accuracy"] for s in steps} | {
            "quantize": None if optimized.accuracy is None else optimized.accuracy.value},
    }
