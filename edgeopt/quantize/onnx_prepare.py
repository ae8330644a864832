"""Make a float ONNX model fit for onnxruntime's int8 quantizer, and say what was changed.

    prepared = prepare_onnx(src, dst, origin="exported")
    prepared.per_channel, prepared.notes

- Initializers listed as graph inputs (IR version 3, classic opset-9 exports) are
  removed from the inputs: the data inputs are the graph inputs that are not
  initializers, and the quantizer sees the weights as constants.
- Below opset 13 the model is upgraded with onnx.version_converter, because
  per-channel DequantizeLinear(axis) needs opset 13; where the upgrade fails or
  the upgraded model no longer checks or loads, the model stays as it was and is
  quantized per tensor.
- Above the newest opset at which this onnxruntime implements QuantizeLinear
  (27 in onnxruntime 1.32, found by running a two-node QDQ model), the model is
  converted down to it with onnx.version_converter; where that fails the model
  stays as it was and the quantized model's load error says why.
- Unnamed nodes get a name (`OpType_index`): onnxruntime's quantizer excludes nodes by name, so a node it
  fails on can be kept in float (edgeopt.quantize.onnx_recovery).
- The result is checked with onnx.checker and loaded by onnxruntime, so a graph
  onnxruntime cannot run is refused here with the cause, not later as a
  quantization failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.convert.onnx_check import Origin, check_model, loads
from edgeopt.errors import cause_of

PER_CHANNEL_OPSET = 13  # DequantizeLinear gets `axis` (per-channel) in opset 13


@dataclass(frozen=True)
class PreparedOnnx:
    path: Path
    per_channel: bool  # False when the opset stayed below 13
    notes: tuple[str, ...]  # for the report: what was changed and why


def _name_nodes(graph: Any) -> None:
    """Name the graph's unnamed nodes `OpType_index`, unique among the names already there."""
    taken = {n.name for n in graph.node if n.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            name, k = f"{node.op_type}_{i}", 0
            while name in taken:
                k += 1
                name = f"{node.op_type}_{i}_{k}"
            node.name = name
            taken.add(name)


def _default_opset(model: Any) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


_QDQ_TOP: dict[int, int] = {}


def newest_qdq_opset(opset: int) -> int:
    """The newest opset <= `opset` at which this onnxruntime runs QuantizeLinear/DequantizeLinear (in process: a
    two-node model we build, so nothing of the user's is loaded here)."""
    if opset in _QDQ_TOP:
        return _QDQ_TOP[opset]
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    top = opset
    while top > PER_CHANNEL_OPSET:
        s, z = numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")
        g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qdq",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [s, z])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", top)])
        m.ir_version = helper.find_min_ir_version_for(list(m.opset_import), ignore_unknown=True)
        try:
            ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            break
        except Exception:  # noqa: BLE001 - NOT_IMPLEMENTED for this opset: try the one below
            top -= 1
    _QDQ_TOP[opset] = top
    return top


def prepare_onnx(src: Path, dst: Path, origin: Origin = Origin.USER, per_channel: bool = True,
                 label: str = "") -> PreparedOnnx:
    """Write the prepared model to `dst`. `per_channel`: whether the profile asks for it (only then upgrade);
    `label`: how messages name the model (the user's path, not a staging copy)."""
    import onnx
    from onnx import helper, version_converter

    from edgeopt.runtime.verify_onnx import load_onnx

    model = load_onnx(src, check=False, external_data=True)  # external data confined; checked below
    g, notes = model.graph, []
    _name_nodes(g)
    inits = {t.name for t in g.initializer}
    listed = [v for v in g.input if v.name in inits]
    if listed:
        data = [v for v in g.input if v.name not in inits]
        del g.input[:]
        g.input.extend(data)
        names = ", ".join(f"'{v.name}'" for v in data)
        notes.append(f"{len(listed)} initializers listed as graph inputs (IR version {model.ir_version}) were taken as "
                     f"weights; data input{'s' if len(data) != 1 else ''}: {names}")
        model.ir_version = max(int(model.ir_version), 4)  # IR 4 lets initializers stay out of the inputs
    opset = _default_opset(model)
    if per_channel and 0 < opset < PER_CHANNEL_OPSET:
        try:
            upgraded = version_converter.convert_version(model, PER_CHANNEL_OPSET)
            upgraded.ir_version = max(int(upgraded.ir_version), helper.find_min_ir_version_for(
                list(upgraded.opset_import), ignore_unknown=True))
            loads(upgraded)
        except Exception as exc:  # noqa: BLE001 - the converter raises many types; per-tensor still works
            per_channel = False
            notes.append(f"opset {opset} could not be upgraded to {PER_CHANNEL_OPSET} with onnx.version_converter "
                         f"({cause_of(exc, 200)}); int8 weights are quantized per tensor")
        else:
            model = upgraded
            notes.append(f"opset {opset} was upgraded to {PER_CHANNEL_OPSET} with onnx.version_converter for "
                         "per-channel int8 (the float baseline keeps the original model)")
    elif 0 < opset < PER_CHANNEL_OPSET:
        per_channel = False
    if opset > (top := newest_qdq_opset(opset)):
        try:
            lowered = version_converter.convert_version(model, top)
            loads(lowered)
        except Exception as exc:  # noqa: BLE001
            notes.append(f"opset {opset} is newer than onnxruntime's QuantizeLinear (opset {top}) and "
                         f"onnx.version_converter could not convert it ({cause_of(exc, 200)})")
        else:
            model = lowered
            notes.append(f"opset {opset} was converted to {top} with onnx.version_converter: this onnxruntime "
                         f"implements QuantizeLinear up to opset {top} (the float baseline keeps the original model)")
    check_model(model, origin, label or src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return PreparedOnnx(dst, per_channel, tuple(notes))
