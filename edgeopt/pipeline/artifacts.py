"""Convert and quantize: the float baseline and the optimized artifact, in the staging folder.

The baseline is the plain float conversion of the *source* model; the optimized
artifact is the compressed model under the profile's scheme. With a [partial]
section and eval data, an int8 artifact whose accuracy drop breaks the budget is
replaced by the accuracy-controlled partial quantization; with 'qat' among its fallbacks,
quantization-aware training is the last rung (edgeopt.pipeline.qat_stage). A fake-quantized model
(`qat_model`) ships the artifact of its trained scales instead of a calibrated one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.atomic import Staging, write_bytes_atomic
from edgeopt.data.datasets import Dataset
from edgeopt.data.tensors import Batch
from edgeopt.load.source import Source
from edgeopt.profiles.schema import Profile, Scheme
from edgeopt.vocabulary import DeviceClass

if TYPE_CHECKING:
    from edgeopt.convert.onnx2tf_layout import TfliteLayout
    from edgeopt.quantize.onnx_activations import Measure, Score
    from edgeopt.quantize.partial import PartialResult
    from edgeopt.report.schema import ConversionStage, QatStage
    from edgeopt.validate.accuracy import AccuracyResult
    from edgeopt.validate.metrics import AccuracyTarget


@dataclass(frozen=True)
class Artifacts:
    baseline: str  # file names inside the staging folder
    optimized: str
    format: str
    scheme: str  # what the optimized artifact is, e.g. "int8" or "int8+float(2 ops)"
    partial: PartialResult | None = None  # the accuracy-control steps, when used (met or not)
    note: str | None = None  # for the report, e.g. why accuracy control was not needed
    notes: tuple[str, ...] = ()  # for the report: what preparing the model changed (opset upgrade, ...)
    optimized_accuracy: AccuracyResult | None = None  # when already measured here
    activations: dict[str, Any] | None = None  # int8 ONNX: how S8S8 / U8S8 was chosen (report stage)
    qat: QatStage | None = None  # the QAT rung of the accuracy ladder, when it ran
    layout: TfliteLayout | None = None  # an ONNX source's TFLite artifacts: where each tensor went (data moved)
    conversion: ConversionStage | None = None  # ONNX -> TFLite: converter, proof, layout, quantizer


def artifact_names(model: Path, fmt: Any) -> tuple[str, str]:
    """(baseline, optimized) file names a build of `model` writes for output format `fmt`."""
    from edgeopt.convert.registry import converter_for

    path = Path(model)
    stem = path.name if path.is_dir() else path.stem
    suffix = converter_for(fmt).suffix
    return f"{stem}.float{suffix}", f"{stem}{suffix}"


def make_artifacts(source: Source, model: Any, profile: Profile, calib: Batch | None,
                   evalset: Dataset | None, reference: list[np.ndarray] | None, stage: Staging,
                   measure: Measure | None = None, train: Dataset | None = None, qat_model: Any = None,
                   target: AccuracyTarget | None = None,
                   sizes: Mapping[str, tuple[int, ...]] | None = None) -> Artifacts:
    """`reference`: the source model's outputs on the eval data (what accuracy is measured against), one array per
    output; `target`: each output's metric and budget (edgeopt.validate.metrics);
    `measure`: times models on the benchmark device (None when the benchmark is skipped);
    `train`: for the QAT rung of the ladder; `qat_model`: a trained fake-quant model, exported as is;
    `sizes`: --shape by input name (an ONNX model's symbolic dimensions, for its TFLite conversion).

    The converter and quantizer come from the registries by the profile's output format.
    """
    from edgeopt.convert.registry import converter_for
    from edgeopt.quantize.registry import QuantizeContext, quantizer_for

    fmt = profile.convert.format
    conv, quant = converter_for(fmt), quantizer_for(fmt)
    q = profile.quantize
    base, opt = artifact_names(source.path, fmt)
    work = stage.dir / "_work"
    work.mkdir(exist_ok=True)
    if source.keras_model is not None:
        float_base = conv.export(source.keras_model, work / "baseline", profile.convert)
        write_bytes_atomic(stage.path(base), conv.float_bytes(float_base))
    elif source.tflite_path is not None:  # a float .tflite: it is the baseline, quantized without TensorFlow
        float_base = write_bytes_atomic(stage.path(base), source.tflite_path.read_bytes())
    elif not conv.from_onnx:  # ONNX for a TFLite profile: onnx2tf's float .tflite, proven before quantizing
        return _converted_onnx(source, profile, calib, evalset, stage, measure, reference, target, sizes or {})
    else:
        assert source.onnx_path is not None and conv.from_onnx  # build checks the source fits the format
        float_base = write_bytes_atomic(stage.path(base), source.onnx_path.read_bytes())  # tools work on the copy
    if qat_model is not None:
        return _qat_artifact(qat_model, profile, stage, base, opt)
    float_opt = float_base if model is source.keras_model else conv.export(model, work / "optimized", profile.convert)
    ctx = QuantizeContext(baseline=stage.path(base), measure=measure, score=_scorer(source, evalset, reference, target),
                          max_accuracy_drop=profile.budgets.max_accuracy_drop,
                          user_model=source.keras_model is None, label=str(source.path),
                          mcu=profile.device_class is DeviceClass.EMBEDDED_MCU)
    done = quant.quantize(float_opt, q, calib, work, ctx)
    write_bytes_atomic(stage.path(opt), done.data)
    plain = Artifacts(base, opt, str(fmt), str(q.scheme), notes=done.notes, activations=done.stage)
    if source.tflite_path is not None:  # accuracy control below works on the float .tflite (ai-edge-quantizer)
        plain = replace(plain, notes=(*plain.notes, *((f"quantized by {done.tool}",) if done.tool else ())))
    skip = _partial_unsupported(source, target) if _use_partial(profile, evalset) else None
    if skip:
        return replace(plain, optimized_accuracy=done.accuracy, notes=(*plain.notes, skip))
    if _use_partial(profile, evalset):
        assert evalset is not None and calib is not None
        within = None if _keep_float_only(profile) else \
            _plain_within_budget(source, profile, evalset, reference, stage, plain, done.accuracy, target)
        if within is not None:
            return within
        from edgeopt.quantize.partial import settings_from_profile

        settings = replace(settings_from_profile(profile), **done.partial_overrides, target=target,
                           outputs=source.outputs)
        result = quant.partial(model, done.partial_source or float_opt, calib, evalset.batch, evalset.y, settings)
        qat = None
        from edgeopt.pipeline.qat_stage import qat_in_ladder, qat_rung

        if result.controlled and not result.met and qat_in_ladder(profile) and train is not None and model is not None:
            result, qat = qat_rung(model, profile, train, evalset, result, stage.path(base).read_bytes()
                                   if model is source.keras_model else conv.float_bytes(float_opt))
        write_bytes_atomic(stage.path(opt), result.model)  # the best variant even when not met: budgets decide
        return replace(plain, scheme=result.chosen_step.scheme, partial=result, note=result.shortfall(), qat=qat)
    return replace(plain, optimized_accuracy=done.accuracy)


def _converted_onnx(source: Source, profile: Profile, calib: Batch | None, evalset: Dataset | None,
                    stage: Staging, measure: Measure | None, reference: list[np.ndarray] | None,
                    target: AccuracyTarget | None, sizes: Mapping[str, tuple[int, ...]]) -> Artifacts:
    """The float .tflite (the baseline) and its quantized artifact; data moved to the .tflite's layout. With
    [partial] and eval data, an int8 artifact over budget is replaced by accuracy control on the float .tflite
    (measured against it, in its layout: outputs by their .tflite names)."""
    from edgeopt.convert.registry import converter_for
    from edgeopt.pipeline.onnx_tflite import convert_onnx
    from edgeopt.quantize.registry import QuantizeContext, quantizer_for

    fmt = profile.convert.format
    base, opt = artifact_names(source.path, fmt)
    converted = convert_onnx(source, converter_for(fmt), profile, calib, evalset, stage.path(base), sizes)
    layout = converted.layout
    ctx = QuantizeContext(baseline=stage.path(base), measure=measure, user_model=True, label=str(source.path),
                          mcu=profile.device_class is DeviceClass.EMBEDDED_MCU)
    done = quantizer_for(fmt).quantize(stage.path(base), profile.quantize, None if calib is None else layout.feed(calib),
                                       stage.dir / "_work", ctx)
    write_bytes_atomic(stage.path(opt), done.data)
    plain = Artifacts(base, opt, str(fmt), str(profile.quantize.scheme), notes=done.notes, layout=layout,
                      conversion=converted.stage.model_copy(update={"quantizer": done.tool or None}))
    skip = _partial_unsupported(source, target) if _use_partial(profile, evalset) else None
    if skip:
        return replace(plain, notes=(*plain.notes, skip))
    if not _use_partial(profile, evalset) or reference is None:
        return plain
    assert evalset is not None and calib is not None
    from edgeopt.validate.accuracy import compare, predict_outputs

    measured = compare(predict_outputs(stage.path(opt), evalset.batch, source.outputs, layout=layout), reference,
                       evalset.y, source.reference_name, target=target)
    within = None if _keep_float_only(profile) else \
        _plain_within_budget(source, profile, evalset, reference, stage, plain, measured, target)
    if within is not None:
        return within
    from edgeopt.quantize.partial import settings_from_profile

    settings = replace(settings_from_profile(profile), **done.partial_overrides, target=target,
                       outputs=layout.output_specs(source.outputs))
    result = quantizer_for(fmt).partial(None, stage.path(base), layout.feed(calib), layout.feed(evalset.batch),
                                        evalset.y, settings)
    write_bytes_atomic(stage.path(opt), result.model)  # the best variant even when not met: budgets decide
    return replace(plain, scheme=result.chosen_step.scheme, partial=result, note=result.shortfall())


def _use_partial(profile: Profile, evalset: Dataset | None) -> bool:
    """Accuracy control, or ([partial] accuracy_control = false) int8 with the keep_float ops kept float."""
    p = profile.partial
    if p is None or evalset is None or profile.quantize.scheme is not Scheme.INT8:
        return False
    return (p.accuracy_control and profile.budgets.max_accuracy_drop is not None) or bool(p.keep_float)


def _keep_float_only(profile: Profile) -> bool:
    return profile.partial is not None and not profile.partial.accuracy_control


def _partial_unsupported(source: Source, target: AccuracyTarget | None) -> str | None:
    """Why accuracy control cannot run on this model (a note), or None."""
    from edgeopt.validate.metrics import CLASS_METRICS

    if target is not None and target.metrics and target.metrics[0] not in CLASS_METRICS and not target.checked:
        from edgeopt.validate.metrics import BUDGETS

        return (f"accuracy control ([partial]) skipped: output '{target.names[0]}' is scored by {target.metrics[0]} "
                f"and no budget applies to it; set budgets.{BUDGETS[target.metrics[0]][0]}; plain int8 was kept")
    return None


def _plain_within_budget(source: Source, profile: Profile, evalset: Dataset, reference: list[np.ndarray] | None,
                         stage: Staging, arts: Artifacts, measured: AccuracyResult | None = None,
                         target: AccuracyTarget | None = None) -> Artifacts | None:
    """`arts` with its measured accuracy when the plain artifact meets max_accuracy_drop, else None."""
    from edgeopt.validate.accuracy import compare, predict_outputs

    if reference is None:
        return None
    res = measured or compare(predict_outputs(stage.path(arts.optimized), evalset.batch, source.outputs), reference,
                              evalset.y, source.reference_name, target=target)
    limit = profile.budgets.max_accuracy_drop
    if res.met is not None:
        if not res.met:
            return None
        p = res.primary
        what = f"{p.metric} {p.figure:.4g}" if p is not None and p.drop is None else f"drops {res.drop:.2f} points"
        note = f"accuracy control ([partial]) not needed: plain {arts.scheme} meets every accuracy budget ({what})"
        return replace(arts, note=note, optimized_accuracy=res)
    if res.drop is None or limit is None or res.drop > limit + 1e-9:
        return None
    note = f"accuracy control ([partial]) not needed: plain {arts.scheme} drops {res.drop:.2f} points (budget {limit:g} points)"
    return replace(arts, note=note, optimized_accuracy=res)


def _scorer(source: Source, evalset: Dataset | None, reference: list[np.ndarray] | None,
            target: AccuracyTarget | None) -> Score | None:
    """Accuracy of an artifact file against the float reference (every output), or None without eval data."""
    if evalset is None or reference is None:
        return None
    from edgeopt.validate.accuracy import compare, predict_outputs

    return lambda path: compare(predict_outputs(path, evalset.batch, source.outputs), reference, evalset.y,
                                source.reference_name, target=target)


def _qat_artifact(qat_model: Any, profile: Profile, stage: Staging, base: str, opt: str) -> Artifacts:
    """The int8 .tflite / QDQ .onnx of a fake-quantized model, with its trained scales (nothing is calibrated)."""
    from edgeopt.qat.export import qat_artifact

    write_bytes_atomic(stage.path(opt), qat_artifact(qat_model, profile, stage.dir / "_work" / "qat"))
    note = "int8 scales come from quantization-aware training (no calibration)"
    if profile.partial is not None:
        note += "; [partial] accuracy control does not re-quantize a QAT model"
    return Artifacts(base, opt, str(profile.convert.format), "int8-qat", note=note)
