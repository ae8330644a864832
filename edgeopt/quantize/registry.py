"""Explicit registry from the profile's output format to its quantizer.

A quantizer starts from the format's float intermediate (edgeopt.convert.registry: a SavedModel
folder for TFLite, a float .onnx for ONNX) and makes the artifact under the profile's scheme, or
runs accuracy-controlled partial quantization ([partial]).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.data.tensors import Batch
from edgeopt.errors import EdgeoptError, ProfileError
from edgeopt.profiles.schema import OutputFormat, QuantizeSection
from edgeopt.registry import Registry

if TYPE_CHECKING:
    from edgeopt.quantize.onnx_activations import Measure, Score
    from edgeopt.quantize.partial import PartialResult, PartialSettings
    from edgeopt.validate.accuracy import AccuracyResult

# (keras model or None, intermediate, calibration, eval x, eval y, settings) -> result
Partial = Callable[[Any, Path, Batch, Batch, "np.ndarray | None", "PartialSettings"], "PartialResult"]


@dataclass(frozen=True)
class QuantizeContext:
    """What a quantizer may use beyond its section (all optional)."""

    baseline: Path | None = None  # the float artifact, to time candidates against
    measure: Measure | None = None  # times models on the benchmark device; None when the benchmark is skipped
    score: Score | None = None  # accuracy of an artifact file on the eval data; None without eval data
    max_accuracy_drop: float | None = None
    user_model: bool = False  # the float model is the user's file (its faults are bad input), not our export
    label: str = ""  # how messages name the model
    mcu: bool = False  # the artifact runs on TFLite Micro: a float .tflite's int8 is checked there against LiteRT


@dataclass(frozen=True)
class Quantized:
    data: bytes
    notes: tuple[str, ...] = ()  # for the report: what the quantizer changed or chose, and why
    stage: dict[str, Any] | None = None  # report stage "onnx_activations": the candidates and the choice
    accuracy: AccuracyResult | None = None  # measured on the eval data while choosing
    partial_source: Path | None = None  # the float model accuracy control starts from (else the intermediate)
    partial_overrides: dict[str, Any] = field(default_factory=dict)  # PartialSettings fields fixed by the choice
    tool: str = ""  # the quantizer and its version, when it is a separate tool ("ai-edge-quantizer 0.10.0")


@dataclass(frozen=True)
class Quantizer:
    # (intermediate, section, calib, work dir, context) -> artifact
    quantize: Callable[[Path, QuantizeSection, Batch | None, Path, QuantizeContext], Quantized]
    partial: Partial


QUANTIZERS: Registry[OutputFormat, Quantizer] = Registry(
    "quantizer", lambda fmt, known: ProfileError(f"no quantizer for '{fmt}'; [convert] format must be one of {', '.join(known)}"))


def quantizer_for(fmt: OutputFormat) -> Quantizer:
    return QUANTIZERS.get(fmt)


def _tflite(saved_model: Path, q: QuantizeSection, calib: Batch | None, work: Path, ctx: QuantizeContext) -> Quantized:
    if saved_model.suffix.lower() == ".tflite":  # a float .tflite (onnx2tf's, or the user's): no TensorFlow
        return _tflite_file(saved_model, q, calib, work, ctx)
    from edgeopt.quantize.tflite import TfliteRecipe, quantized_tflite

    recipe = TfliteRecipe(q.scheme, q.input_type, q.output_type, q.per_channel, calib)
    return Quantized(quantized_tflite(saved_model, recipe))


def _tflite_file(float_tflite: Path, q: QuantizeSection, calib: Batch | None, work: Path,
                 ctx: QuantizeContext) -> Quantized:
    """A float .tflite quantized through ai-edge-quantizer (`calib` already in the .tflite's layout)."""
    from edgeopt.profiles.schema import CalibrationMethod, Scheme
    from edgeopt.quantize.tflite_file import TfliteFileOptions, quantize_tflite_file

    if q.calibration_method is CalibrationMethod.ENTROPY:
        msg = "[quantize] calibration_method = 'entropy' is ONNX only; a .tflite calibrates with 'minmax' or 'percentile'"
        raise ProfileError(msg)
    if q.scheme is Scheme.NONE:
        return Quantized(float_tflite.read_bytes())
    from edgeopt.analysis.tflite_graph import read_tflite

    notes: tuple[str, ...] = ()
    per_channel = q.per_channel
    if per_channel and any(op.op == "BATCH_MATMUL" for op in read_tflite(float_tflite).main.operators):
        # ai-edge-quantizer gives BATCH_MATMUL's constant operand per-channel scales LiteRT's kernel does not
        # honour (measured: digits MLP without biases top-1 98.6% float -> 10.3% per-channel, 98.3% per-tensor).
        # A 2-D MatMul by a constant reaches onnx2tf as a Gemm (FULLY_CONNECTED, per-channel is right there:
        # convert.onnx2tf._matmul_as_gemm); what is left here is a MatMul of rank > 2 or of two computed tensors
        per_channel = False
        notes = ("per-channel weights off: the model has BATCH_MATMUL (onnx2tf's MatMul of 3-D or computed "
                 "operands), whose per-channel int8 weights LiteRT does not run correctly; weights are per-tensor",)
    options = TfliteFileOptions(per_channel=per_channel, statistic=q.calibration_method, input_type=q.input_type,
                                output_type=q.output_type, mcu=ctx.mcu)
    done = quantize_tflite_file(float_tflite, work / "quantized.tflite", q.scheme, calib, options)
    return Quantized(done.path.read_bytes(), (*notes, *done.notes), tool=f"{done.quantizer} {done.quantizer_version}")


def _tflite_partial(model: Any, saved_model: Path, calib: Batch, eval_x: Batch, eval_y: np.ndarray | None,
                    settings: PartialSettings) -> PartialResult:
    from edgeopt.quantize.partial import partial_quantize_tflite

    return partial_quantize_tflite(model, calib, eval_x, eval_y, settings)  # the Keras model: op labels use its layer names


def _onnx(float_onnx: Path, q: QuantizeSection, calib: Batch | None, work: Path, ctx: QuantizeContext) -> Quantized:
    """Prepare the model (opset >= 13, IR-3 inputs), then quantize; int8 chooses S8S8 / U8S8 (quantize.onnx_activations)."""
    from edgeopt.convert.onnx_check import Origin
    from edgeopt.profiles.schema import OnnxActivations, Scheme
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx
    from edgeopt.quantize.onnx_activations import quantize_with_activations
    from edgeopt.quantize.onnx_prepare import prepare_onnx

    origin = Origin.USER if ctx.user_model else Origin.EXPORTED
    prepared = prepare_onnx(float_onnx, work / "prepared.onnx", origin, q.per_channel, ctx.label)
    per_channel = q.per_channel and prepared.per_channel
    recipe = OnnxRecipe(q.scheme, per_channel, q.calibration_method, q.onnx_format, calib)
    dst = work / "quantized.onnx"
    if q.scheme is not Scheme.INT8:
        quantize_onnx(prepared.path, dst, recipe)
        return Quantized(dst.read_bytes(), prepared.notes, partial_source=prepared.path)
    try:
        choice = quantize_with_activations(prepared.path, dst, recipe, q.onnx_activations, ctx.baseline or float_onnx,
                                           ctx.measure, ctx.score, ctx.max_accuracy_drop)
    except EdgeoptError as exc:  # a probe or runtime error names our private file: say what it is instead
        exc.args = (re.sub(re.escape(str(work)) + r"/\S*?\.onnx", "the int8 model (onnxruntime's quantizer output)",
                           str(exc)),)
        raise
    return Quantized(dst.read_bytes(), (*prepared.notes, choice.note), choice.to_dict(), choice.chosen.accuracy,
                     prepared.path, {"per_channel": per_channel,
                                     "unsigned_activations": choice.chosen.activations is OnnxActivations.UINT8})


def _onnx_partial(model: Any, float_onnx: Path, calib: Batch, eval_x: Batch, eval_y: np.ndarray | None,
                  settings: PartialSettings) -> PartialResult:
    from edgeopt.quantize.partial import partial_quantize_onnx

    return partial_quantize_onnx(float_onnx, calib, eval_x, eval_y, settings)


QUANTIZERS.register(OutputFormat.TFLITE, Quantizer(_tflite, _tflite_partial))
QUANTIZERS.register(OutputFormat.ONNX, Quantizer(_onnx, _onnx_partial))
