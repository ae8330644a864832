"""Per-layer quantization sensitivity: error between float and int8, layer by layer.

TFLite: `tf.lite.experimental.QuantizationDebugger` builds an int8 model with NumericVerify
ops, so each quantized op's output is compared with the float op run on the same
(dequantized) inputs: the error is local to that op. The float model, run with all
tensors preserved, gives each op's signal power for the SNR.
ONNX: `onnxruntime.quantization.qdq_loss_debug`: activations before/after their QDQ pair
(local activation noise) and each weight against its dequantized copy, combined per node.

MAC shares come from edgeopt.analysis (tflite_graph / onnx_graph).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import ConversionError, DataError

SNR_CAP_DB = 200.0
NUMERIC_VERIFY = "NumericVerify"


@dataclass(frozen=True)
class LayerSensitivity:
    name: str  # the op's output tensor (TFLite) or node name (ONNX): what partial quantization excludes
    layer: str  # readable label: Keras layer name(s) found in `name`, else `name`
    op_type: str  # CONV_2D, FULLY_CONNECTED... / Conv, MatMul...
    rmse: float  # root-mean-square error of the op output, float vs quantized
    snr_db: float  # signal-to-quantization-noise ratio of the op output (lower = more sensitive)
    macs_share: float  # fraction of the model's MACs in this op (0..1)


def rank(rows: tuple[LayerSensitivity, ...]) -> tuple[LayerSensitivity, ...]:
    """Most sensitive first (lowest SNR; ties by larger MAC share)."""
    return tuple(sorted(rows, key=lambda r: (r.snr_db, -r.macs_share, r.name)))


def snr_db(signal_power: float, noise_power: float) -> float:
    if noise_power <= 0.0:
        return SNR_CAP_DB
    if signal_power <= 0.0:
        return -SNR_CAP_DB
    return float(max(-SNR_CAP_DB, min(SNR_CAP_DB, 10.0 * math.log10(signal_power / noise_power))))


def _check_calibration(calib_x: np.ndarray | None) -> np.ndarray:
    if calib_x is None or np.asarray(calib_x).shape[0] == 0:
        raise DataError("sensitivity needs calibration data; give --calib data.npz (array x, a few hundred samples)")
    return np.asarray(calib_x, dtype=np.float32)


# ------------------------------------------------------------------------------------------ TFLite


def layer_label(tensor_name: str, layer_names: tuple[str, ...]) -> str:
    """Keras layer names appearing in a (possibly fused, ';'-joined) TFLite tensor name, in model order."""
    segments = {re.sub(r"_\d+$", "", seg) for seg in re.split(r"[;/]", tensor_name)}
    found = [n for n in layer_names if n in segments]
    return "+".join(found) if found else tensor_name


class TfliteDebugSession:
    """One calibration of a SavedModel, then any number of int8 variants with chosen ops kept float.

    Variants are cheap: the calibrated model is re-quantized with `denylisted_nodes` (op output
    tensor names, as in `LayerSensitivity.name`), no re-calibration.
    """

    def __init__(self, saved_model: Path, calib_x: np.ndarray, per_channel: bool = True,
                 fully_quantize: bool = False, layer_names: tuple[str, ...] = ()) -> None:
        import tensorflow as tf

        from edgeopt.convert.tflite import to_tflite

        self._tf = tf
        self.calib_x = _check_calibration(calib_x)
        self.layer_names = layer_names
        self.float_model = to_tflite(saved_model)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = self.dataset
        conv._experimental_disable_per_channel = not per_channel
        self._fully = fully_quantize
        try:
            with _quiet():
                self._debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=conv, debug_dataset=self.dataset,
                    debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=fully_quantize))
        except Exception as exc:  # noqa: BLE001 - converter errors come in many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ConversionError(f"int8 calibration for the quantization debugger failed: {first}") from None

    def dataset(self) -> Iterator[list[np.ndarray]]:
        for i in range(self.calib_x.shape[0]):  # fixed order: deterministic
            yield [self.calib_x[i : i + 1]]

    def quantized(self, float_nodes: tuple[str, ...] = ()) -> bytes:
        """int8 model bytes with the ops producing `float_nodes` kept in float."""
        tf = self._tf
        self._set_options(tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(float_nodes) or None, fully_quantize=self._fully))
        with _quiet():
            return bytes(self._debugger.get_nondebug_quantized_model())

    def _set_options(self, options: Any) -> None:
        with _quiet():
            self._debugger.options = options

    def sensitivity(self) -> tuple[LayerSensitivity, ...]:
        """Per-op local error of the plain int8 model (nothing denylisted), in graph order."""
        tf = self._tf
        self._set_options(tf.lite.experimental.QuantizationDebugOptions(fully_quantize=self._fully))
        with _quiet():
            self._debugger.run()
        stats = self._debugger.layer_statistics or {}
        mse: dict[str, float] = {}
        for key, metrics in stats.items():
            name = _verified_tensor(key)
            mse[name] = float(metrics["mean_squared_error"])
        power = self._signal_power(tuple(mse))
        ops = _tflite_ops(self.float_model)
        total = sum(m for _, _, m in ops.values()) or 1
        rows = []
        for name in sorted(mse, key=lambda n: ops.get(n, (1 << 30, "", 0))[0]):
            _, op_type, macs = ops.get(name, (0, "?", 0))
            rows.append(LayerSensitivity(name, layer_label(name, self.layer_names), op_type, math.sqrt(max(mse[name], 0.0)),
                                         snr_db(power.get(name, 0.0), mse[name]), macs / total))
        return tuple(rows)

    def _signal_power(self, names: tuple[str, ...]) -> dict[str, float]:
        """Mean square of each named tensor in the float model over the calibration data."""
        from edgeopt.runtime.litert import _interpreter_module

        mod, _, _ = _interpreter_module()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            it = mod.Interpreter(model_content=self.float_model, experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        index = {d["name"]: d["index"] for d in it.get_tensor_details()}
        inp = it.get_input_details()[0]["index"]
        acc = {n: 0.0 for n in names if n in index}
        count = 0
        for (x,) in self.dataset():
            it.set_tensor(inp, x)
            it.invoke()
            for n in acc:
                acc[n] += float(np.mean(np.square(it.get_tensor(index[n]).astype(np.float64))))
            count += 1
        return {n: v / max(count, 1) for n, v in acc.items()}


def _verified_tensor(key: str) -> str:
    """'NumericVerify/<tensor>N:<idx>' -> '<tensor>' (the debugger appends a digit to the name)."""
    name = key.rsplit(":", 1)[0]
    if name.startswith(NUMERIC_VERIFY + "/"):
        name = name[len(NUMERIC_VERIFY) + 1 :]
    if name and name[-1].isdigit():
        name = name[:-1]
    return name


def _tflite_ops(model: bytes) -> dict[str, tuple[int, str, int]]:
    """Output tensor name -> (op index, op type, MACs), from the float model."""
    from edgeopt.analysis.tflite_graph import read_tflite

    g = read_tflite(model)
    out: dict[str, tuple[int, str, int]] = {}
    for op in g.main.operators:
        for t in op.outputs:
            if t >= 0:
                out[g.main.tensors[t].name] = (op.index, op.op, op.macs)
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def keras_layer_names(model: Any) -> tuple[str, ...]:
    names: list[str] = []

    def walk(m: Any) -> None:
        for lay in getattr(m, "layers", None) or []:
            names.append(lay.name)
            walk(lay)

    walk(model)
    return tuple(names)


def sensitivity_tflite(model: Any, calib_x: np.ndarray, per_channel: bool = True) -> tuple[LayerSensitivity, ...]:
    """Per-op int8 sensitivity of a Keras model (or a SavedModel folder), in graph order."""
    calib = _check_calibration(calib_x)
    with open_tflite_session(model, calib, per_channel) as session:
        return session.sensitivity()


@contextlib.contextmanager
def open_tflite_session(model: Any, calib_x: np.ndarray, per_channel: bool = True,
                        fully_quantize: bool = False) -> Iterator[TfliteDebugSession]:
    """A TfliteDebugSession for a Keras model or a SavedModel folder (exported to a temp folder if needed)."""
    from edgeopt.convert.savedmodel import export_saved_model

    names: tuple[str, ...]
    with tempfile.TemporaryDirectory(prefix="edgeopt-sens-") as tmp:
        if isinstance(model, (str, Path)):
            sm, names = Path(model), ()
        else:
            sm, names = export_saved_model(model, Path(tmp) / "sm"), keras_layer_names(model)
        yield TfliteDebugSession(sm, calib_x, per_channel, fully_quantize, names)


# ------------------------------------------------------------------------------------------ ONNX


def _reader(input_name: str, x: np.ndarray) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= x.shape[0]:
                return None
            self.i += 1
            return {input_name: x[self.i - 1 : self.i]}

    return Reader()


def sensitivity_onnx(float_onnx: Path, calib_x: np.ndarray, per_channel: bool = True,
                     quantize: Callable[[Path, Path], Path] | None = None) -> tuple[LayerSensitivity, ...]:
    """Per-node int8 (QDQ) sensitivity of a float ONNX model, in the quantized graph's order.

    Nodes are those of the quantized model (after onnxruntime's pre-processing, e.g. MatMul+Add+Relu
    -> Gemm), so `name` is what `nodes_to_exclude` takes. Noise per node = its output activation
    quantized with the calibrated scale (the float activation from the float model) + its weights'
    quantization noise (`create_weight_matching`); relative powers add. `quantize(src, dst)`
    overrides the int8 recipe.
    """
    import logging

    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

    calib = _check_calibration(calib_x)
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    float_onnx = Path(float_onnx)
    input_name = onnx.load(str(float_onnx), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="edgeopt-sens-") as tmp:
        t = Path(tmp)
        qdq = t / "qdq.onnx"
        if quantize is not None:
            quantize(float_onnx, qdq)
        else:
            quantize_onnx(float_onnx, qdq, OnnxRecipe(Scheme.INT8, per_channel=per_channel, calibration=calib))
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            modify_model_output_intermediate_tensors(str(float_onnx), str(t / "f_aug.onnx"))
            f_act = collect_activations(str(t / "f_aug.onnx"), _reader(input_name, calib))
            weights = create_weight_matching(str(float_onnx), str(qdq))
        q = onnx.load(str(qdq))
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
        macs = _onnx_macs(node, inits, ws, weights, act, calib.shape[0])
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


def sensitivity_for_file(path: Path, calib: Path | None, unsafe_load: bool = False) -> tuple[LayerSensitivity, ...]:
    """`edgeopt inspect --sensitivity`: per-layer int8 sensitivity of a float .keras/.h5/SavedModel or .onnx file."""
    from edgeopt.data.datasets import check_against_input, load_dataset
    from edgeopt.errors import DataError, InputError
    from edgeopt.load.formats import ModelFormat, detect_format
    from edgeopt.load.keras_model import KERAS_FORMATS

    fmt = detect_format(path)
    if fmt not in KERAS_FORMATS and fmt is not ModelFormat.ONNX:
        raise InputError(f"{path}: sensitivity compares the float model with int8; give the float .keras, .h5, "
                         "SavedModel or .onnx model, not a converted .tflite")
    if calib is None:
        raise DataError("--sensitivity needs calibration data: add --calib data.npz (array x)")
    if fmt is ModelFormat.ONNX:
        from edgeopt.load.source import open_source

        source = open_source(path, unsafe_load)
        data = check_against_input(load_dataset(calib, "calibration"), source.input_shape, "calibration")
        return sensitivity_onnx(path, data.x[:200])
    from edgeopt.convert.savedmodel import input_shape
    from edgeopt.load.keras_model import load_keras

    model = load_keras(path, unsafe=unsafe_load)
    data = check_against_input(load_dataset(calib, "calibration"), input_shape(model), "calibration")
    return sensitivity_tflite(model, data.x[:200])
