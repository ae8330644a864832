"""Float .tflite sensitivity without TensorFlow: each op's local int8 error, from the float model and its int8 twin.

The method (the same estimate as edgeopt.quantize.sensitivity.onnx, not an end-to-end difference):
- the float model runs in LiteRT with every tensor preserved (reference kernels, no delegate) on the calibration
  samples: each op's float output and inputs;
- the int8 model (ai-edge-quantizer's, made by the caller) gives each op output's scale and zero point and each
  weight's quantized values, found by tensor name (ai-edge-quantizer keeps the float model's names);
- an op's noise = its float output rounded to its int8 grid (local activation noise: errors of earlier ops are not
  counted again) + its weights' noise: for FULLY_CONNECTED the output error X (W - Wq)^T on the real float inputs
  (an outlier weight on an input that is always 0 is harmless in float but crushes its channel in int8), for other
  ops the weights' relative error |W - Wq|^2 / |W|^2. Relative powers add; SNR = -10 log10(sum).
Ops ai-edge-quantizer left float (no quantized output) are not rows: moving them out of int8 changes nothing.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.analysis.tflite_graph import TfliteGraph, TfliteTensor, read_tflite
from edgeopt.data.tensors import Batch, batch_count
from edgeopt.quantize.sensitivity.common import SNR_CAP_DB, LayerSensitivity, check_calibration, snr_db

SAMPLES = 64  # calibration samples the float model runs on
INTEGER = ("int8", "int16")
SKIPPED = ("QUANTIZE", "DEQUANTIZE")


def op_label(op_type: str, index: int) -> str:
    """How a .tflite op is shown and matched by [partial] keep_float: "CONV_2D#3"."""
    return f"{op_type}#{index}"


def sensitivity_tflite_file(float_tflite: Path, int8_tflite: Path, calib_x: Batch,
                            samples: int = SAMPLES) -> tuple[LayerSensitivity, ...]:
    """Per-op int8 sensitivity of float .tflite `float_tflite`, given `int8_tflite` (its full-int8 quantization):
    rows in graph order, `name` = the op's output tensor, `layer` = "OP_TYPE#index"."""
    calib = check_calibration(calib_x)
    fgraph, qgraph = read_tflite(Path(float_tflite)), read_tflite(Path(int8_tflite))
    qtensors = {t.name: t for t in qgraph.main.tensors}
    ops = [op for op in fgraph.main.operators if op.op not in SKIPPED and op.outputs and op.outputs[0] >= 0]
    rows_of: list[tuple[Any, TfliteTensor]] = []
    for op in ops:
        q = qtensors.get(fgraph.main.tensors[op.outputs[0]].name)
        if q is not None and q.quantized and q.dtype in INTEGER:
            rows_of.append((op, q))
    watched = {op.outputs[0] for op, _ in rows_of}
    watched |= {op.inputs[0] for op, _ in rows_of if op.op == "FULLY_CONNECTED" and op.inputs and op.inputs[0] >= 0}
    acts = _float_activations(Path(float_tflite), calib, sorted(watched), samples)
    qvalues = _constants(Path(int8_tflite))
    fvalues = _constants(Path(float_tflite))
    total = sum(op.macs for op, _ in rows_of) or 1
    rows = []
    for op, q in rows_of:
        f = np.concatenate([a.ravel() for a in acts[op.outputs[0]]]).astype(np.float64)
        noise = float(np.mean((f - _fake_quant(f, q)) ** 2)) if f.size else 0.0
        power = float(np.mean(f * f)) if f.size else 0.0
        rel = noise / power if power > 0 else 0.0
        rel += _weight_noise(op, fgraph, qtensors, fvalues, qvalues, acts)
        name = fgraph.main.tensors[op.outputs[0]].name
        rows.append(LayerSensitivity(name, op_label(op.op, op.index), op.op, math.sqrt(noise),
                                     snr_db(1.0, rel) if rel > 0 else SNR_CAP_DB, op.macs / total))
    return tuple(rows)


def sensitivity_float_tflite(float_tflite: Path, calib_x: Batch, per_channel: bool = True) -> tuple[LayerSensitivity, ...]:
    """`sensitivity_tflite_file` against the full-int8 model ai-edge-quantizer makes of `float_tflite` here
    (float I/O; per-tensor weights where per-channel ones would be wrong, see quantize.tflite_file)."""
    import tempfile

    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.tflite_file import TfliteFileOptions, quantize_tflite_file, weights_per_channel

    calib = check_calibration(calib_x)
    per_channel, _ = weights_per_channel(Path(float_tflite), per_channel)
    with tempfile.TemporaryDirectory(prefix="edgeopt-sens-tflite-") as tmp:
        int8 = Path(tmp) / "int8.tflite"
        quantize_tflite_file(Path(float_tflite), int8, Scheme.INT8, calib, TfliteFileOptions(per_channel=per_channel))
        return sensitivity_tflite_file(Path(float_tflite), int8, calib)


def _interpreter(model: Path) -> Any:
    from edgeopt.runtime.litert import _interpreter_module

    mod, _, _ = _interpreter_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = mod.Interpreter(model_path=str(model), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def _float_activations(model: Path, calib: Batch, watched: list[int], samples: int) -> dict[int, list[np.ndarray]]:
    """Tensor index -> its float value for each of the first `samples` calibration samples (one per run)."""
    it = _interpreter(model)
    details = it.get_input_details()
    if isinstance(calib, np.ndarray):
        arrays = [calib]
    else:
        from edgeopt.runtime.shapes import plain_name

        by = {plain_name(k): v for k, v in calib.items()}
        names = [plain_name(d["name"]) for d in details]
        arrays = [by[n] for n in names] if all(n in by for n in names) else list(calib.values())
    if len(arrays) != len(details):
        from edgeopt.errors import DataError

        msg = f"the model has {len(details)} inputs; give the calibration .npz one array per input name"
        raise DataError(msg)
    out: dict[int, list[np.ndarray]] = {t: [] for t in watched}
    for i in range(min(samples, batch_count(calib))):
        for d, a in zip(details, arrays, strict=True):
            x = np.asarray(a[i:i + 1], d["dtype"])
            shape = tuple(int(s) for s in d["shape"])
            if x.shape != shape:
                x = x.reshape(shape) if x.size == int(np.prod(shape)) else x
                if x.shape != shape:
                    it.resize_tensor_input(d["index"], list(x.shape))
                    it.allocate_tensors()
            it.set_tensor(d["index"], x)
        it.invoke()
        for t in watched:
            out[t].append(np.array(it.get_tensor(t)))
    return out


def _constants(model: Path) -> dict[str, np.ndarray]:
    """Constant tensors (weights, biases) by name."""
    graph = read_tflite(model)
    it = _interpreter(model)
    out = {}
    for t in graph.main.tensors:
        if t.is_constant:
            try:
                out[t.name] = np.array(it.get_tensor(t.index))
            except ValueError:  # a tensor the runtime does not expose
                continue
    return out


def _fake_quant(f: np.ndarray, q: TfliteTensor) -> np.ndarray:
    scale, zp = float(q.scale[0]), float(q.zero_point[0]) if q.zero_point else 0.0
    lim = np.iinfo(np.dtype(q.dtype))
    return (np.clip(np.round(f / scale + zp), lim.min, lim.max) - zp) * scale


def _dequantize(values: np.ndarray, q: TfliteTensor) -> np.ndarray:
    v = values.astype(np.float64)
    scale = np.asarray(q.scale, np.float64)
    zp = np.asarray(q.zero_point or (0,), np.float64)
    if scale.size > 1:  # per channel along the quantized dimension
        shape = [1] * v.ndim
        shape[q.quantized_dimension] = -1
        scale, zp = scale.reshape(shape), (zp.reshape(shape) if zp.size == scale.size else zp)
    return (v - zp) * scale


def _weight_noise(op: Any, fgraph: TfliteGraph, qtensors: dict[str, TfliteTensor], fvalues: dict[str, np.ndarray],
                  qvalues: dict[str, np.ndarray], acts: dict[int, list[np.ndarray]]) -> float:
    """Relative output noise of the op's quantized float weights (0 without any)."""
    rel = 0.0
    for pos, i in enumerate(op.inputs):
        if i < 0:
            continue
        ft = fgraph.main.tensors[i]
        q = qtensors.get(ft.name)
        if not ft.is_constant or ft.dtype != "float32" or q is None or not q.quantized or q.dtype == "int32" \
                or ft.name not in fvalues or ft.name not in qvalues:
            continue
        w = fvalues[ft.name].astype(np.float64)
        wq = _dequantize(qvalues[ft.name], q).reshape(w.shape)
        if op.op == "FULLY_CONNECTED" and pos == 1 and w.ndim == 2 and op.inputs[0] in acts:
            x = np.concatenate([a.reshape(-1, w.shape[1]) for a in acts[op.inputs[0]]]).astype(np.float64)
            signal = float(np.mean((x @ w.T) ** 2))
            rel += float(np.mean((x @ (w - wq).T) ** 2)) / signal if signal > 0 else 0.0
            continue
        p = float(np.mean(w * w))
        rel += float(np.mean((w - wq) ** 2)) / p if p > 0 else 0.0
    return rel
