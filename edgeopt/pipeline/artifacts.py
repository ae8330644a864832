"""Convert and quantize: the float baseline and the optimized artifact, in the staging folder.

The baseline is the plain float conversion of the *source* model; the optimized
artifact is the compressed model under the profile's scheme. With a [partial]
section and eval data, an int8 artifact whose accuracy drop breaks the budget is
replaced by the accuracy-controlled partial quantization.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.data.datasets import Dataset
from edgeopt.pipeline.atomic import Staging, write_bytes_atomic
from edgeopt.pipeline.source import Source
from edgeopt.profiles.schema import OutputFormat, Profile, Scheme

if TYPE_CHECKING:
    from edgeopt.quantize.partial import PartialResult
    from edgeopt.validate.accuracy import AccuracyResult


@dataclass(frozen=True)
class Artifacts:
    baseline: str  # file names inside the staging folder
    optimized: str
    format: str
    scheme: str  # what the optimized artifact is, e.g. "int8" or "int8+float(2 ops)"
    partial: PartialResult | None = None  # the accuracy-control steps, when used (met or not)
    note: str | None = None  # for the report, e.g. why accuracy control was not needed
    optimized_accuracy: AccuracyResult | None = None  # when already measured here


def _stem(source: Source) -> str:
    return source.path.stem if source.path.is_file() else source.path.name


def make_artifacts(source: Source, model: Any, profile: Profile, calib: np.ndarray | None,
                   evalset: Dataset | None, reference: np.ndarray | None, stage: Staging) -> Artifacts:
    """`reference`: the source model's outputs on the eval data (what accuracy drop is measured against)."""
    if profile.convert.format is OutputFormat.TFLITE:
        return _tflite(source, model, profile, calib, evalset, reference, stage)
    return _onnx(source, model, profile, calib, evalset, reference, stage)


def _use_partial(profile: Profile, evalset: Dataset | None) -> bool:
    p = profile.partial
    return p is not None and p.accuracy_control and evalset is not None and \
        profile.quantize.scheme is Scheme.INT8 and profile.budgets.max_accuracy_drop is not None


def _plain_within_budget(source: Source, profile: Profile, evalset: Dataset, reference: np.ndarray | None,
                         stage: Staging, arts: Artifacts) -> Artifacts | None:
    """`arts` with its measured accuracy when the plain artifact meets max_accuracy_drop, else None."""
    from edgeopt.validate.accuracy import compare, predict

    if reference is None:
        return None
    res = compare(predict(stage.path(arts.optimized), evalset.x), reference, evalset.y, source.reference_name)
    limit = profile.budgets.max_accuracy_drop
    if res.drop is None or limit is None or res.drop > limit + 1e-9:
        return None
    note = f"accuracy control ([partial]) not needed: plain {arts.scheme} drops {res.drop:.2f} points (budget {limit:g} points)"
    return replace(arts, note=note, optimized_accuracy=res)


def _tflite(source: Source, model: Any, profile: Profile, calib: np.ndarray | None,
            evalset: Dataset | None, reference: np.ndarray | None, stage: Staging) -> Artifacts:
    from edgeopt.convert.savedmodel import export_saved_model
    from edgeopt.convert.tflite import to_tflite
    from edgeopt.quantize.tflite import TfliteRecipe, converter_setup

    stem, q = _stem(source), profile.quantize
    base, opt = f"{stem}.float.tflite", f"{stem}.tflite"
    sm_base = export_saved_model(source.keras_model, stage.dir / "_work" / "baseline", batch=1)
    write_bytes_atomic(stage.path(base), to_tflite(sm_base))
    sm_opt = sm_base if model is source.keras_model else export_saved_model(model, stage.dir / "_work" / "optimized", batch=1)
    recipe = TfliteRecipe(q.scheme, q.input_type, q.output_type, q.per_channel, calib)
    write_bytes_atomic(stage.path(opt), to_tflite(sm_opt, converter_setup(recipe)))
    if _use_partial(profile, evalset):
        assert evalset is not None and calib is not None
        plain = _plain_within_budget(source, profile, evalset, reference, stage, Artifacts(base, opt, "tflite", str(q.scheme)))
        if plain is not None:
            return plain
        from edgeopt.quantize.partial import partial_quantize_tflite, settings_from_profile

        result = partial_quantize_tflite(model, calib, evalset.x, evalset.y, settings_from_profile(profile))
        write_bytes_atomic(stage.path(opt), result.model)  # the best variant even when not met: budgets decide
        return Artifacts(base, opt, "tflite", result.chosen_step.scheme, result, result.shortfall())
    return Artifacts(base, opt, "tflite", str(q.scheme))


def _onnx(source: Source, model: Any, profile: Profile, calib: np.ndarray | None,
          evalset: Dataset | None, reference: np.ndarray | None, stage: Staging) -> Artifacts:
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

    stem, q = _stem(source), profile.quantize
    base, opt = f"{stem}.float.onnx", f"{stem}.onnx"
    if source.keras_model is not None:
        from edgeopt.convert.onnx import keras_to_onnx

        write_bytes_atomic(stage.path(base), keras_to_onnx(source.keras_model, profile.convert.opset))
        if model is source.keras_model:
            float_opt = stage.path(base)
        else:
            float_opt = write_bytes_atomic(stage.dir / "_work" / "compressed.onnx", keras_to_onnx(model, profile.convert.opset))
    else:
        assert source.onnx_path is not None
        write_bytes_atomic(stage.path(base), source.onnx_path.read_bytes())
        float_opt = stage.path(base)
    recipe = OnnxRecipe(q.scheme, q.per_channel, q.calibration_method, q.onnx_format, calib)
    quantize_onnx(Path(float_opt), stage.path(opt), recipe)
    if _use_partial(profile, evalset):
        assert evalset is not None and calib is not None
        plain = _plain_within_budget(source, profile, evalset, reference, stage, Artifacts(base, opt, "onnx", str(q.scheme)))
        if plain is not None:
            return plain
        from edgeopt.quantize.partial import partial_quantize_onnx, settings_from_profile

        result = partial_quantize_onnx(float_opt, calib, evalset.x, evalset.y, settings_from_profile(profile))
        write_bytes_atomic(stage.path(opt), result.model)  # the best variant even when not met: budgets decide
        return Artifacts(base, opt, "onnx", result.chosen_step.scheme, result, result.shortfall())
    return Artifacts(base, opt, "onnx", str(q.scheme))

