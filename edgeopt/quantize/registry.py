"""Explicit registry from the profile's output format to its quantizer.

A quantizer starts from the format's float intermediate (edgeopt.convert.registry: a SavedModel
folder for TFLite, a float .onnx for ONNX) and makes the artifact under the profile's scheme, or
runs accuracy-controlled partial quantization ([partial]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.errors import ProfileError
from edgeopt.profiles.schema import OutputFormat, QuantizeSection
from edgeopt.registry import Registry

if TYPE_CHECKING:
    from edgeopt.quantize.partial import PartialResult, PartialSettings

# (keras model or None, intermediate, calibration, eval x, eval y, settings) -> result
Partial = Callable[[Any, Path, np.ndarray, np.ndarray, "np.ndarray | None", "PartialSettings"], "PartialResult"]


@dataclass(frozen=True)
class Quantizer:
    quantize: Callable[[Path, QuantizeSection, np.ndarray | None, Path], bytes]  # (intermediate, section, calib, work dir)
    partial: Partial


QUANTIZERS: Registry[OutputFormat, Quantizer] = Registry(
    "quantizer", lambda fmt, known: ProfileError(f"no quantizer for '{fmt}'; [convert] format must be one of {', '.join(known)}"))


def quantizer_for(fmt: OutputFormat) -> Quantizer:
    return QUANTIZERS.get(fmt)


def _tflite(saved_model: Path, q: QuantizeSection, calib: np.ndarray | None, work: Path) -> bytes:
    from edgeopt.convert.tflite import to_tflite
    from edgeopt.quantize.tflite import TfliteRecipe, converter_setup

    return to_tflite(saved_model, converter_setup(TfliteRecipe(q.scheme, q.input_type, q.output_type, q.per_channel, calib)))


def _tflite_partial(model: Any, saved_model: Path, calib: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray | None,
                    settings: PartialSettings) -> PartialResult:
    from edgeopt.quantize.partial import partial_quantize_tflite

    return partial_quantize_tflite(model, calib, eval_x, eval_y, settings)  # the Keras model: op labels use its layer names


def _onnx(float_onnx: Path, q: QuantizeSection, calib: np.ndarray | None, work: Path) -> bytes:
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

    dst = work / "quantized.onnx"
    quantize_onnx(float_onnx, dst, OnnxRecipe(q.scheme, q.per_channel, q.calibration_method, q.onnx_format, calib))
    return dst.read_bytes()


def _onnx_partial(model: Any, float_onnx: Path, calib: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray | None,
                  settings: PartialSettings) -> PartialResult:
    from edgeopt.quantize.partial import partial_quantize_onnx

    return partial_quantize_onnx(float_onnx, calib, eval_x, eval_y, settings)


QUANTIZERS.register(OutputFormat.TFLITE, Quantizer(_tflite, _tflite_partial))
QUANTIZERS.register(OutputFormat.ONNX, Quantizer(_onnx, _onnx_partial))
