"""Explicit registry from the profile's output format ([convert] format) to its converter.

A converter turns a Keras model into the format's float intermediate (a SavedModel folder for
TFLite, a float .onnx file for ONNX) and that intermediate into the float artifact's bytes. The
quantizer for the same format (edgeopt.quantize.registry) starts from the same intermediate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt.atomic import write_bytes_atomic
from edgeopt.errors import ProfileError
from edgeopt.profiles.schema import ConvertSection, OutputFormat
from edgeopt.registry import Registry

if TYPE_CHECKING:
    from edgeopt.convert.onnx2tf import Onnx2tfConversion


@dataclass(frozen=True)
class Converter:
    label: str  # for messages: "TFLite", "ONNX"
    suffix: str  # of the artifact file
    from_onnx: bool  # a float ONNX model is already this format's intermediate (else a Keras model is needed)
    export: Callable[[Any, Path, ConvertSection], Path]  # (keras model, destination without suffix, settings) -> intermediate
    float_bytes: Callable[[Path], bytes]  # intermediate -> float artifact
    # (float .onnx, float artifact path) -> the conversion (tool, version, I/O layout); None: Keras sources only
    # (onnx, dest, fixed batch, input name -> --shape dims for its symbolic dims)
    onnx_to_float: Callable[[Path, Path, int | None, Mapping[str, tuple[int, ...]]], Onnx2tfConversion] | None = None


CONVERTERS: Registry[OutputFormat, Converter] = Registry(
    "converter", lambda fmt, known: ProfileError(f"no converter makes '{fmt}'; [convert] format must be one of {', '.join(known)}"))


def converter_for(fmt: OutputFormat) -> Converter:
    return CONVERTERS.get(fmt)


def _saved_model(model: Any, dest: Path, settings: ConvertSection) -> Path:
    from edgeopt.convert.savedmodel import export_saved_model

    return export_saved_model(model, dest, batch=1)


def _tflite_float(saved_model: Path) -> bytes:
    from edgeopt.convert.tflite import float_tflite

    return float_tflite(saved_model)


def _onnx_file(model: Any, dest: Path, settings: ConvertSection) -> Path:
    from edgeopt.convert.onnx import keras_to_onnx
    from edgeopt.convert.onnx_check import Origin, check_onnx

    path = write_bytes_atomic(dest.with_suffix(".onnx"), keras_to_onnx(model, settings.opset))
    check_onnx(path, Origin.EXPORTED)  # checker + onnxruntime before anything quantizes it
    return path


def _onnx2tf(onnx_model: Path, dest: Path, batch: int | None,
             sizes: Mapping[str, tuple[int, ...]]) -> Onnx2tfConversion:
    from edgeopt.convert.onnx2tf import convert_with_onnx2tf

    return convert_with_onnx2tf(onnx_model, dest, batch=batch, sizes=sizes)  # a separate program on a private copy, with a timeout


CONVERTERS.register(OutputFormat.TFLITE, Converter("TFLite", ".tflite", from_onnx=False, export=_saved_model,
                                                   float_bytes=_tflite_float, onnx_to_float=_onnx2tf))
CONVERTERS.register(OutputFormat.ONNX, Converter("ONNX", ".onnx", from_onnx=True, export=_onnx_file, float_bytes=Path.read_bytes))
