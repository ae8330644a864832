"""ONNX sensitivity: error between float and QDQ int8, node by node, with onnxruntime's qdq_loss_debug.

Activations before/after their QDQ pair (local activation noise) and each weight against its
dequantized copy, combined per node of the quantized graph.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.data.tensors import Batch, batch_count, feed_unit, take_feed
from edgeopt.quantize.sensitivity.common import SNR_CAP_DB, LayerSensitivity, check_calibration, quiet, snr_db
from edgeopt.runtime.verify_onnx import load_onnx


def _reader(x: Batch, units: dict[str, int], first: str) -> Any:
    """One sample per call, a dict by input name (a single array feeds `first`); `units`: rows per sample by input
    name (data.tensors.feed_unit)."""
    from onnxruntime.quantization import CalibrationDataReader

    arrays = {first: x} if isinstance(x, np.ndarray) else dict(x)
    n = batch_count(x, (units.get(next(iter(arrays)), 1),))

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= n:
                return None
            self.i += 1
            return {k: take_feed(v, units.get(k, 1), self.i - 1) for k, v in arrays.items()}

    return Reader()


def sensitivity_onnx(float_onnx: Path, calib_x: Batch, per_channel: bool = True,
                     quantize: Callable[[Path, Path], Path] | None = None) -> tuple[LayerSensitivity, ...]:
    """Per-node int8 (QDQ) sensitivity of a float ONNX model, in the quantized graph's order.

    Nodes are those of the quantized model (after onnxruntime's pre-processing, e.g. MatMul+Add+Relu
    -> Gemm), so `name` is what `nodes_to_exclude` takes. Noise per node = its output activation
    quantized with the calibrated scale (the float activation from the float model) + its weights'
    quantization noise (`create_weight_matching`); relative powers add. `quantize(src, dst)`
    overrides the int8 recipe.
    """
    import logging

    from onnx import numpy_helper
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

    calib = check_calibration(calib_x)
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    float_onnx = Path(float_onnx)
    graph = load_onnx(float_onnx).graph
    weights_in = {t.name for t in graph.initializer}
    data = [v for v in graph.input if v.name not in weights_in]  # IR-3 models list weights as inputs too
    units = {v.name: feed_unit([d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim])
             for v in data}
    with tempfile.TemporaryDirectory(prefix="edgeopt-sens-") as tmp:
        t = Path(tmp)
        qdq = t / "qdq.onnx"
        if quantize is not None:
            quantize(float_onnx, qdq)
        else:
            quantize_onnx(float_onnx, qdq, OnnxRecipe(Scheme.INT8, per_channel=per_channel, calibration=calib))
        with quiet(), contextlib.redirect_stderr(io.StringIO()):
            modify_model_output_intermediate_tensors(str(float_onnx), str(t / "f_aug.onnx"))
            f_act = collect_activations(str(t / "f_aug.onnx"), _reader(calib, units, data[0].name))
            weights = create_weight_matching(str(float_onnx), str(qdq))
        q = load_onnx(qdq, check=False, external_data=True)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    qparams = {n.input[0]: (inits.get(n.input[1]), inits.get(n.input[2]) if len(n.input) > 2 else None)
               for n in q.graph.node if n.op_type == "QuantizeLinear"}
    weight_rel = {name: _rel_noise(m["float"], m["dequantized"]) for name, m in weights.items()}
    candidates = []
    for node in q.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not node.output:
            continue
        out = node.output[0]
        ref = out[: -len("_QuantizeLinear_Input")] if out.endswith("_QuantizeLinear_Input") else out
        act = f_act.get(ref)
        rel, noise = 0.0, 0.0
        if act is not None and out in qparams and qparams[out][0] is not None:
            scale, zp = qparams[out]
            f = np.concatenate([np.ravel(a) for a in act]).astype(np.float64)
            noise = float(np.mean((f - _fake_quant(f, scale, zp)) ** 2))
            power = float(np.mean(f * f))
            rel = noise / power if power > 0 else 0.0
        ws = [i[: -len("_DequantizeLinear_Output")] for i in node.input if i.endswith("_DequantizeLinear_Output")]
        ws = [w for w in ws if w in weight_rel]
        out_rel = _matmul_weight_noise(node, ws, weights, f_act)
        rel += out_rel if out_rel is not None else sum(weight_rel[w] for w in ws)
        if act is None and not ws:
            continue
        macs = _onnx_macs(node, inits, ws, weights, act, batch_count(calib))
        candidates.append((node.name or out, node.op_type, math.sqrt(noise), rel, macs))
    total = sum(c[4] for c in candidates) or 1
    return tuple(LayerSensitivity(n, n, op, rmse, snr_db(1.0, rel) if rel > 0 else SNR_CAP_DB, macs / total)
                 for n, op, rmse, rel, macs in candidates)


def _matmul_weight_noise(node: Any, ws: list[str], weights: dict[str, Any], f_act: dict[str, Any]) -> float | None:
    """Relative output noise of a Gemm/MatMul from its weights alone: |X(W - Wq)|^2 / |XW|^2 on float inputs.

    Weighting by the real inputs matters: an outlier weight on an input that is always 0 costs
    nothing in float but crushes the rest of its channel in int8.
    """
    if node.op_type not in ("Gemm", "MatMul") or not ws:
        return None
    src = node.input[0]
    src = src[: -len("_DequantizeLinear_Output")] if src.endswith("_DequantizeLinear_Output") else src
    act = f_act.get(src)
    w, wq = (np.asarray(weights[ws[0]][k], np.float64) for k in ("float", "dequantized"))
    if act is None or w.ndim != 2:
        return None
    wq = wq.reshape(w.shape)
    if any(a.name == "transB" and a.i == 1 for a in node.attribute):
        w, wq = w.T, wq.T
    x = np.concatenate([np.reshape(a, (-1, w.shape[0])) for a in act]).astype(np.float64)
    signal = float(np.mean((x @ w) ** 2))
    return float(np.mean((x @ (w - wq)) ** 2)) / signal if signal > 0 else 0.0


def _fake_quant(f: np.ndarray, scale: Any, zp: Any) -> np.ndarray:
    s = float(np.ravel(scale)[0])
    z = float(np.ravel(zp)[0]) if zp is not None else 0.0
    dt = np.asarray(zp).dtype if zp is not None else np.dtype(np.uint8)
    lim = np.iinfo(dt)
    qv = np.clip(np.round(f / s + z), lim.min, lim.max)
    return (qv - z) * s


def _onnx_macs(node: Any, inits: dict[str, np.ndarray], ws: list[str], weights: dict[str, Any],
               act: Any, samples: int) -> int:
    """MACs per sample of Conv/Gemm/MatMul from the weight shape and the output size."""
    if not ws or act is None or node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return 0
    w = np.asarray(weights[ws[0]]["float"])
    out_elems = sum(int(np.size(a)) for a in act) // max(samples, 1)
    if node.op_type in ("Conv", "ConvTranspose"):
        return out_elems * int(np.prod(w.shape[1:]))
    trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
    k = w.shape[1] if trans_b and w.ndim == 2 else w.shape[0]
    return out_elems * int(k)


def _rel_noise(ref: np.ndarray, deq: np.ndarray) -> float:
    ref64 = np.asarray(ref, np.float64)
    p = float(np.mean(ref64 * ref64))
    n = float(np.mean((ref64 - np.asarray(deq, np.float64).reshape(ref64.shape)) ** 2))
    return n / p if p > 0 else 0.0
