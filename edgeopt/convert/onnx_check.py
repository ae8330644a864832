"""An ONNX graph is checked with onnx.checker and loaded by onnxruntime before anything quantizes it.

    check_onnx(path, Origin.EXPORTED)     # ConversionError naming the cause (our export); an op ONNX or
                                          # onnxruntime lacks is the model's: UnsupportedOpError naming it (exit 2)
    check_onnx(path, Origin.USER, label)  # InputError (the user's file)

tf2onnx can leave TensorFlow nodes (StatefulPartitionedCall) or extra inputs in a
graph that still serializes; loading it in onnxruntime here names the node, instead
of a quantization failure later.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgeopt.errors import ConversionError, InputError, UnsupportedOpError, cause_of

# How onnx.checker and onnxruntime name an op they do not know, and the node that has it
_UNKNOWN_OP = (re.compile(r"No Op registered for (?P<op>[\w.]+)"),
               re.compile(r"Could not find an implementation for (?P<op>[\w.]+)\("))
_NODE = (re.compile(r"Name: (?P<node>\S+) OpType:"), re.compile(r"node with name '(?P<node>[^']+)'"))


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
            op, node = unknown_op(str(exc))
            if op:  # an op the model uses that ONNX or onnxruntime lacks: the model's, not ours (exit 2)
                where = f" (node {node})" if node else ""
                msg = (f"the Keras model uses an operation tf2onnx exported as '{op}'{where}, which ONNX or onnxruntime "
                       f"does not have: {cause_of(exc, 300)}; replace that operation in the model (or build for a "
                       "TFLite target, which does not go through ONNX)")
                raise UnsupportedOpError(msg, (op,)) from None
            msg = (
                f"the ONNX graph exported from the Keras model does not check or load in "
                f"onnxruntime: {cause_of(exc)}"
            )
            raise ConversionError(msg) from None
        msg = f"{label}: onnxruntime cannot load the model: {cause_of(exc)}"
        raise InputError(msg) from None


def unknown_op(text: str) -> tuple[str, str]:
    """(op, node) of an op the checker or onnxruntime says it has no definition or kernel for; ("", "") if none."""
    op = next((m.group("op") for p in _UNKNOWN_OP if (m := p.search(text))), "")
    node = next((m.group("node") for p in _NODE if (m := p.search(text))), "") if op else ""
    return op, node


def loads(model: Any) -> None:
    """onnx.checker, then an onnxruntime session on CPU (optimizations off: load and type-check only)."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
