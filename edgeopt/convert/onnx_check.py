"""An ONNX graph is checked with onnx.checker and loaded by onnxruntime before anything quantizes it.

    check_onnx(path, Origin.EXPORTED)     # ConversionError naming the cause (our export)
    check_onnx(path, Origin.USER, label)  # InputError (the user's file)

tf2onnx can leave TensorFlow nodes (StatefulPartitionedCall) or extra inputs in a
graph that still serializes; loading it in onnxruntime here names the node, instead
of a quantization failure later.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from edgeopt.errors import ConversionError, InputError, cause_of


class Origin(StrEnum):
    """Where a float model came from: the user's file (its faults are bad input) or our export (internal)."""

    USER = "user"
    EXPORTED = "exported"


def check_onnx(path: Path, origin: Origin = Origin.USER, label: str = "") -> None:
    from edgeopt.runtime.verify_onnx import load_onnx

    check_model(load_onnx(path, check=False, external_data=True), origin, label or Path(path).name)


def check_model(model: Any, origin: Origin, label: str) -> None:
    """onnx.checker and an onnxruntime CPU session on the in-memory model; the error names its cause."""
    try:
        loads(model)
    except Exception as exc:  # noqa: BLE001 - checker ValidationError, onnxruntime Fail / NotImplemented
        if origin is Origin.EXPORTED:
            msg = (
                f"the ONNX graph exported from the Keras model does not check or load in "
                f"onnxruntime: {cause_of(exc)}"
            )
            raise ConversionError(msg) from None
        msg = f"{label}: onnxruntime cannot load the model: {cause_of(exc)}"
        raise InputError(msg) from None


def loads(model: Any) -> None:
    """onnx.checker, then an onnxruntime session on CPU (optimizations off: load and type-check only)."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
