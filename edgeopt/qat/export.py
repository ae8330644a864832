"""Fake-quantized Keras model -> full-int8 TFLite whose scales are the trained ones.

The SavedModel keeps the FakeQuant ops; the converter's quantization-aware path turns each into the
scale/zero point of its tensor, so no representative dataset is used and nothing is re-calibrated.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeopt.profiles.schema import IOType, OutputFormat, Profile

QAT_LAYERS = ("ActQuant", "QuantConv")


def is_qat_model(model: Any) -> bool:
    """True when `model` holds edgeopt fake-quant layers (a model written by `edgeopt qat`)."""
    return any(type(layer).__name__ in QAT_LAYERS for layer in getattr(model, "layers", ()))


def qat_setup(input_type: IOType = IOType.FLOAT32, output_type: IOType = IOType.FLOAT32) -> Callable[[Any], None]:
    """A converter set-up for edgeopt.convert.tflite.to_tflite: int8 from the FakeQuant ranges."""
    from edgeopt.quantize.tflite import _tf_type

    def setup(conv: Any) -> None:
        import tensorflow as tf

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.inference_input_type = _tf_type(tf, input_type)
        conv.inference_output_type = _tf_type(tf, output_type)

    return setup


def _dense_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers
            if type(layer).__name__ == "QuantConv" and layer.kind == "dense" and layer.per_channel]


def qat_tflite(model: Any, input_type: IOType = IOType.FLOAT32, output_type: IOType = IOType.FLOAT32,
               saved_model: Path | None = None) -> bytes:
    """The int8 .tflite bytes of a fake-quantized model (per-channel Dense patched in, see fc_channels.py)."""
    import numpy as np

    from edgeopt.convert.savedmodel import export_saved_model
    from edgeopt.convert.tflite import to_tflite

    dense = _dense_layers(model)
    for layer in dense:
        layer.export_per_tensor = True
    try:
        with tempfile.TemporaryDirectory(prefix="edgeopt-qat-sm-") as tmp:
            sm = export_saved_model(model, saved_model or Path(tmp) / "sm", batch=1)
            data = to_tflite(sm, qat_setup(input_type, output_type))
    finally:
        for layer in dense:
            layer.export_per_tensor = False
    if not dense:
        return data
    from edgeopt.qat.fc_channels import per_channel_fc

    pairs = [tuple(np.asarray(t) for t in layer.folded()) for layer in dense]
    data, _ = per_channel_fc(data, pairs)  # type: ignore[arg-type]
    return data


def qat_artifact(model: Any, profile: Profile, saved_model: Path | None = None) -> bytes:
    """The profile's artifact of a fake-quantized model: int8 .tflite (its I/O types) or QDQ .onnx."""
    if profile.convert.format is OutputFormat.ONNX:
        from edgeopt.qat.onnx_export import qat_onnx

        return qat_onnx(model, profile.convert.opset)
    q = profile.quantize
    return qat_tflite(model, q.input_type, q.output_type, saved_model)
