"""Fake-quantized Keras model -> ONNX QDQ whose scales come from training (no calibration).

tf2onnx turns each activation FakeQuant into QuantizeLinear/DequantizeLinear with the trained range,
and folds the weight FakeQuants into float initializers that already sit on the int8 grid. Those
weights are then stored as int8 behind a DequantizeLinear (per output channel, or per tensor, as
trained), so onnxruntime runs int8 kernels on exactly the trained values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}  # output-channel axis of the weight initializer


def _weight_qdq(proto: Any, per_channel: bool) -> int:
    """Replace float Conv/MatMul weight initializers by int8 + DequantizeLinear; returns how many."""
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    done: dict[str, str] = {}
    new_nodes = []
    for node in g.node:
        axis = WEIGHT_AXIS.get(node.op_type)
        if axis is None or len(node.input) < 2 or node.input[1] not in inits:
            continue
        name = node.input[1]
        if name not in done:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            if w.ndim < 2:
                continue
            other = tuple(i for i in range(w.ndim) if i != axis)
            m = np.abs(w).max(axis=other) if per_channel else np.array(np.abs(w).max())
            scale = (np.maximum(m, 1e-8) / 127.0).astype(np.float32)
            shape = [1] * w.ndim
            if per_channel:
                shape[axis] = -1
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            g.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scale, f"{name}_scale"),
                                  numpy_helper.from_array(np.zeros_like(scale, np.int8), f"{name}_zero_point")])
            dq = helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
                                  [f"{name}_dq"], name=f"{name}_DequantizeLinear")
            if per_channel:
                dq.attribute.append(helper.make_attribute("axis", axis))
            new_nodes.append(dq)
            done[name] = f"{name}_dq"
        node.input[1] = done[name]
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used or i.name.endswith(("_int8", "_scale", "_zero_point"))]
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = new_nodes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return len(done)


def qat_onnx(model: Any, opset: int = 17) -> bytes:
    """QDQ .onnx bytes of a fake-quantized model: trained activation scales, int8 weights on the trained grid."""
    import onnx

    from edgeopt.convert.onnx import keras_to_onnx

    per_channel = all(layer.per_channel for layer in model.layers if type(layer).__name__ == "QuantConv")
    proto = onnx.load_from_string(keras_to_onnx(model, opset))
    _weight_qdq(proto, per_channel)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
