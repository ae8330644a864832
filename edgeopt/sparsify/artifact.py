"""Read a .tflite back and count the zero weights per kernel (the proof that sparsity survived).

Weights are the constant filter inputs of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
TRANSPOSE_CONV (behind a DENSIFY op when the converter stored them sparse). A sparse-encoded
tensor stores only its non-zero blocks; its dense element count comes from the shape.
No TensorFlow: the flatbuffer is read with ai-edge-litert's generated schema.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeopt.errors import ModelFileError

WEIGHT_INPUT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}
_NP = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16,
       "INT32": np.int32}


@dataclass(frozen=True)
class WeightZeros:
    op: str
    tensor: str
    dtype: str
    elements: int  # dense element count (from the shape)
    zeros: int  # zero weights in the dense tensor (stored zeros + elements not stored)
    stored_bytes: int  # bytes of the buffer as stored in the file
    sparse_encoded: bool  # the tensor carries TFLite sparsity metadata (values stored compressed)
    index: int = -1  # tensor index in subgraph 0

    @property
    def sparsity(self) -> float:
        return self.zeros / max(1, self.elements)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sparsity": self.sparsity}


def _enum(schema: Any, name: str) -> dict[int, str]:
    cls = getattr(schema, name)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _buffer_bytes(model: Any, data: bytes, index: int) -> bytes:
    b = model.buffers[index] if 0 <= index < len(model.buffers or []) else None
    if b is None:
        return b""
    if b.data is not None and len(b.data):
        return np.asarray(b.data, dtype=np.uint8).tobytes()
    if getattr(b, "offset", 0) > 1 and getattr(b, "size", 0) > 0:  # large models keep buffers after the flatbuffer
        return data[b.offset : b.offset + b.size]
    return b""


def weight_zeros(data: bytes) -> tuple[WeightZeros, ...]:
    """Zero counts of every weight tensor of the main subgraph, in operator order (each tensor once)."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        sg = model.subgraphs[0]
    except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer fails in many ways
        msg = f"the .tflite cannot be read ({type(exc).__name__}); re-convert it"
        raise ModelFileError(msg) from None
    ops = _enum(schema, "BuiltinOperator")
    types = _enum(schema, "TensorType")
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producer = {o: op for op in sg.operators for o in (op.outputs if op.outputs is not None else [])}
    out: list[WeightZeros] = []
    seen: set[int] = set()
    for op in sg.operators:
        name = ops.get(codes[op.opcodeIndex], "?")
        slot = WEIGHT_INPUT.get(name)
        if slot is None or op.inputs is None or len(op.inputs) <= slot or op.inputs[slot] < 0:
            continue
        ti = int(op.inputs[slot])
        src = producer.get(ti)
        if src is not None and ops.get(codes[src.opcodeIndex]) == "DENSIFY":
            ti = int(src.inputs[0])
        if ti in seen:
            continue
        seen.add(ti)
        t = sg.tensors[ti]
        raw = _buffer_bytes(model, data, t.buffer)
        tname = types.get(t.type, "?")
        if not raw or tname not in _NP:
            continue
        values = np.frombuffer(raw, dtype=_NP[tname])
        elements = int(np.prod(t.shape)) if t.shape is not None else values.size
        zeros = int(np.count_nonzero(values == 0)) + (elements - values.size)
        label = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        out.append(WeightZeros(name, label, tname.lower(), elements, zeros, len(raw), t.sparsity is not None, ti))
    return tuple(out)


def tensor_of_layer(tensor: str, layer: str) -> bool:
    """Whether a converter tensor name (e.g. 'model_1/res1_a_conv_1/convolution') belongs to Keras layer `layer`."""
    rx = re.compile(r"(^|/)" + re.escape(layer) + r"(_\d+)?(/|$)")
    return any(rx.search(part) for part in tensor.split(";"))


def zeros_by_layer(data: bytes, layers: Sequence[str]) -> dict[str, WeightZeros]:
    """The weight tensor of each named layer (layers without one in the file are left out)."""
    tensors = weight_zeros(data)
    found: dict[str, WeightZeros] = {}
    for lay in layers:
        match = [t for t in tensors if tensor_of_layer(t.tensor, lay)]
        if match:
            found[lay] = match[0]
    return found
