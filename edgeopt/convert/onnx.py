"""Keras -> ONNX with tf2onnx, with an explicit input signature (dynamic batch)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import Any

from edgeopt.convert.savedmodel import input_shape
from edgeopt.errors import ConversionError, RuntimeUnavailableError


def keras_to_onnx(model: Any, opset: int) -> bytes:
    """Return the serialized ONNX model; deterministic for the same weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        import tf2onnx
    except ImportError:
        raise RuntimeUnavailableError("ONNX export needs tf2onnx; install it with: pip install 'edgeopt[convert]'") from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    shape = (None,) + input_shape(model)[1:]
    spec = tf.TensorSpec(shape, tf.float32, name="input")

    @tf.function
    def forward(x: Any) -> Any:
        return model(x, training=False)

    try:
        from edgeopt.runtime.quiet import native_quiet

        with native_quiet(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            proto, _ = tf2onnx.convert.from_function(forward, input_signature=[spec], opset=opset)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"ONNX export failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None
    return normalize_onnx(proto).SerializeToString()


def normalize_onnx(proto: Any) -> Any:
    """Make the output names and metadata stable so the bytes are reproducible."""
    proto.producer_name = "edgeopt+tf2onnx"
    proto.producer_version = ""
    proto.doc_string = ""
    proto.graph.doc_string = ""
    if len(proto.graph.output) == 1:
        old = proto.graph.output[0].name
        if old != "output":
            for node in proto.graph.node:
                node.output[:] = ["output" if o == old else o for o in node.output]
                node.input[:] = ["output" if i == old else i for i in node.input]
            proto.graph.output[0].name = "output"
    return proto
