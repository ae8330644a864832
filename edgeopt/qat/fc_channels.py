"""Per-channel FULLY_CONNECTED weights for a QAT artifact, written into the converted flatbuffer.

The converter's quantization-aware path only accepts a per-tensor FakeQuant on a Dense kernel, so a
per-channel Dense is exported per tensor and fixed here: each FULLY_CONNECTED whose int8 weights are
exactly a Dense layer's per-tensor grid gets that layer's per-channel int8 weights
(scale max|w_c| / 127, as trained) and its int32 bias re-quantized at input_scale * weight_scale_c.
Activation scales are untouched: they come from training.
"""

from __future__ import annotations

import numpy as np

from edgeopt.errors import ConversionError


def _grid(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric narrow-range int8 of `w` (in, out): (int8 values (out, in), scales per out channel)."""
    m = np.abs(w).max(axis=0) if axis is not None else np.full(w.shape[1], np.abs(w).max())
    scale = np.maximum(m, 1e-8).astype(np.float32) / np.float32(127.0)
    q = np.clip(np.floor(w / scale + 0.5), -127, 127).astype(np.int8)  # FakeQuant rounds half up
    return q.T.copy(), scale


def per_channel_fc(data: bytes, dense: list[tuple[np.ndarray, np.ndarray]]) -> tuple[bytes, int]:
    """Rewrite the FULLY_CONNECTED ops matching `dense` [(folded kernel (in, out), folded bias)]; returns (bytes, count)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    model = fbu.convert_bytearray_to_object(bytearray(data))
    fc = schema.BuiltinOperator.FULLY_CONNECTED
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    todo = [(k.astype(np.float32), b.astype(np.float32), _grid(k.astype(np.float32), None)[0]) for k, b in dense]
    done = 0
    for sg in model.subgraphs:
        for op in sg.operators:
            if codes[op.opcodeIndex] != fc or len(op.inputs) < 2:
                continue
            x_t, w_t = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]]
            b_t = sg.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None  # a zero bias is dropped
            wbuf = model.buffers[w_t.buffer]
            if w_t.type != schema.TensorType.INT8 or wbuf.data is None:
                continue
            wq = np.frombuffer(bytes(wbuf.data), np.int8).reshape(tuple(w_t.shape))
            diffs = [(int(np.abs(pt.astype(np.int32) - wq).max()), i) for i, (_, _, pt) in enumerate(todo)
                     if pt.shape == wq.shape]
            if not diffs or min(diffs)[0] > 1:  # the converter may round a value at .5 the other way
                continue
            match = min(diffs)[1]
            if b_t is None and np.any(todo[match][1] != 0):
                continue
            k, b, _ = todo.pop(match)
            q, scale = _grid(k, 0)
            in_scale = float(x_t.quantization.scale[0])
            bq = np.clip(np.round(b / (in_scale * scale.astype(np.float64))), -2**31, 2**31 - 1).astype(np.int32)
            wbuf.data = np.frombuffer(q.tobytes(), np.uint8).copy()
            w_t.quantization.scale = [float(s) for s in scale]
            w_t.quantization.zeroPoint = [0] * len(scale)
            w_t.quantization.quantizedDimension = 0
            done += 1
            if b_t is None:
                continue
            model.buffers[b_t.buffer].data = np.frombuffer(bq.tobytes(), np.uint8).copy()
            b_t.quantization.scale = [float(in_scale * s) for s in scale]
            b_t.quantization.zeroPoint = [0] * len(scale)
            b_t.quantization.quantizedDimension = 0
    if todo:
        msg = f"internal: {len(todo)} Dense layer(s) of the QAT model not found in the int8 artifact"
        raise ConversionError(msg)
    return bytes(fbu.convert_object_to_bytearray(model)), done
