"""Per-layer quantization sensitivity: error between float and int8, layer by layer.

common.py holds the row type (LayerSensitivity), the ranking and SNR; tflite.py and onnx.py
compute the rows for their backend (tflite_file.py: a float .tflite, without TensorFlow); `sensitivity_for_file` is `edgeopt inspect --sensitivity`.
"""

from __future__ import annotations

from pathlib import Path

from edgeopt.quantize.sensitivity.common import LayerSensitivity, rank, snr_db
from edgeopt.quantize.sensitivity.onnx import sensitivity_onnx
from edgeopt.quantize.sensitivity.tflite import (
    TfliteDebugSession,
    keras_layer_names,
    layer_label,
    open_tflite_session,
    sensitivity_tflite,
)

__all__ = ["LayerSensitivity", "TfliteDebugSession", "keras_layer_names", "layer_label", "open_tflite_session", "rank",
           "sensitivity_for_file", "sensitivity_onnx", "sensitivity_tflite", "snr_db"]


def sensitivity_for_file(path: Path, calib: Path | None, unsafe_load: bool = False) -> tuple[LayerSensitivity, ...]:
    """`edgeopt inspect --sensitivity`: per-layer int8 sensitivity of a float .keras/.h5/SavedModel, .onnx or .tflite."""
    from edgeopt.errors import DataError, InputError
    from edgeopt.load.formats import ModelFormat, detect_format
    from edgeopt.load.keras_model import KERAS_FORMATS

    fmt = detect_format(path)
    if fmt not in KERAS_FORMATS and fmt not in (ModelFormat.ONNX, ModelFormat.TFLITE):
        msg = (
            f"{path}: sensitivity compares the float model with int8; give the float .keras, .h5, "
            "SavedModel, .onnx or float .tflite model"
        )
        raise InputError(msg)
    if calib is None:
        msg = "--sensitivity needs calibration data: add --calib data.npz (array x)"
        raise DataError(msg)
    if fmt in KERAS_FORMATS:  # the model's own code runs: in the sandbox (edgeopt.sandbox)
        from edgeopt.sandbox.runner import run_model_code

        return run_model_code(  # type: ignore[no-any-return]
            "edgeopt.quantize.sensitivity:sensitivity_here",
            {"path": path, "calib": calib, "unsafe_load": unsafe_load}, tuple[LayerSensitivity, ...])
    return sensitivity_here(path, calib, unsafe_load)


def sensitivity_here(path: Path, calib: Path, unsafe_load: bool = False) -> tuple[LayerSensitivity, ...]:
    """sensitivity_for_file in this process (the sandbox's side for Keras models)."""
    from edgeopt.data.datasets import check_against_input, load_dataset
    from edgeopt.load.source import open_source

    source = open_source(path, unsafe_load)
    data = check_against_input(load_dataset(calib, "calibration", source.input_shape, source.inputs),
                               source.input_shape, "calibration", source.inputs)
    from edgeopt.data.tensors import batch_head, units_of

    head = batch_head(data.batch, 200, units_of([i.shape for i in source.inputs] or [source.input_shape]))
    if source.keras_model is not None:
        return sensitivity_tflite(source.keras_model, head)
    if source.tflite_path is not None:  # a float .tflite: ai-edge-quantizer's int8, no TensorFlow
        from edgeopt.quantize.sensitivity.tflite_file import sensitivity_float_tflite

        return sensitivity_float_tflite(source.tflite_path, head)
    return sensitivity_onnx(path, head)
