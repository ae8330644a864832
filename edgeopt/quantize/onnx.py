"""ONNX quantization with onnxruntime.quantization (and float16 via onnxruntime.transformers)."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.data.tensors import Batch, batch_count, feed_unit, take_feed
from edgeopt.errors import ConversionError, InputError, UnsupportedOpError, cause_of
from edgeopt.profiles.schema import CalibrationMethod, QuantFormat, Scheme
from edgeopt.runtime.verify_onnx import load_onnx


@dataclass(frozen=True)
class OnnxRecipe:
    scheme: Scheme
    per_channel: bool = True
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    quant_format: QuantFormat = QuantFormat.QDQ
    calibration: Batch | None = None  # one array (single input) or arrays by input name
    nodes_to_exclude: tuple[str, ...] = ()
    unsigned_activations: bool = False  # int8 only: U8S8 (uint8 activations) instead of S8S8


class _Reader:
    """CalibrationDataReader: one sample at a time, fixed order, a dict by input name (every input of the model;
    a single array feeds the only input `name`). `units`: rows per sample by input name (data.tensors.feed_unit)."""

    def __init__(self, name: str, x: Batch, units: dict[str, int]) -> None:
        self._arrays = {name: x} if isinstance(x, np.ndarray) else dict(x)
        self._units = {k: units.get(k, 1) for k in self._arrays}
        self._n, self._i = batch_count(x, (next(iter(self._units.values())),)), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._n:
            return None
        i = self._i
        self._i += 1
        feeds = {k: take_feed(v, self._units[k], i) for k, v in self._arrays.items()}
        return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in feeds.items()}

    def rewind(self) -> None:
        self._i = 0


def quantize_onnx(src: Path, dst: Path, recipe: OnnxRecipe) -> Path:
    """Write the quantized model for `recipe` to `dst`."""
    import onnx

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    source = load_onnx(src, external_data=recipe.scheme is Scheme.FLOAT16)  # checked, external data confined
    try:
        if recipe.scheme is Scheme.NONE:
            dst.write_bytes(src.read_bytes())
        elif recipe.scheme is Scheme.FLOAT16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(source, keep_io_types=True)
            onnx.save(_topological(model), str(dst))
        elif recipe.scheme is Scheme.DYNAMIC:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with _quiet():
                quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=recipe.per_channel,
                                 nodes_to_exclude=list(recipe.nodes_to_exclude))
        elif recipe.scheme is Scheme.INT8:
            _static(src, dst, recipe, *_data_inputs(source.graph))
        else:
            msg = f"scheme '{recipe.scheme}' is not available for ONNX; use none, float16, dynamic or int8"
            raise InputError(msg)
    except (InputError, ConversionError):
        raise
    except Exception as exc:  # noqa: BLE001
        if recipe.scheme is Scheme.INT8 and "No data is collected" in str(exc):  # the calibrator found no tensor
            ops = ", ".join(sorted({n.op_type for n in source.graph.node})) or "none"
            msg = (f"onnxruntime's int8 quantizer finds nothing to quantize in this model (its ops: {ops}; it does not "
                   "enter Scan/Loop/If bodies); build it with [quantize] scheme = \"float16\" or \"none\"")
            raise UnsupportedOpError(msg) from None
        advice = ("; onnxruntime's quantizer could not take this model: try [quantize] scheme = \"dynamic\" or "
                  "\"float16\", or keep the op in float ([partial] keep_float)") if recipe.scheme is Scheme.INT8 else ""
        msg = (f"ONNX quantization ({recipe.scheme}) failed: {type(exc).__name__}: "
               f"{_without_paths(cause_of(exc), src)}{advice}")
        raise ConversionError(msg) from None
    return dst


def _data_inputs(graph: Any) -> tuple[str, dict[str, int]]:
    """The first data input's name and the rows per sample of every data input (data.tensors.feed_unit)."""
    weights = {t.name for t in graph.initializer}  # IR-3 models list them as inputs too
    data = [v for v in graph.input if v.name not in weights]
    units = {v.name: feed_unit([d.dim_value if d.HasField("dim_value") else None
                                for d in v.type.tensor_type.shape.dim]) for v in data}
    return data[0].name, units


def first_sample(src: Path, recipe: OnnxRecipe) -> dict[str, np.ndarray] | None:
    """The first calibration sample by input name, as the quantizer is fed it; None without calibration data."""
    if recipe.calibration is None:
        return None
    name, units = _data_inputs(load_onnx(src, check=False).graph)
    return _Reader(name, recipe.calibration, units).get_next()


def _without_paths(text: str, src: Path) -> str:
    """Name our private files by the model's name: a staging or temporary path means nothing to the user."""
    import re

    text = text.replace(str(src), src.name).replace(str(src.parent) + "/", "")
    return re.sub(r"\S*(edgeopt-(q|partial-onnx)-|ort\.quant\.)[^/\s]*/", "", text)


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _static(src: Path, dst: Path, recipe: OnnxRecipe, name: str, units: dict[str, int]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod as CM
    from onnxruntime.quantization import QuantFormat as QF
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if recipe.calibration is None:
        msg = "int8 needs calibration data; give --calib data.npz (or --random-calibration)"
        raise InputError(msg)
    method = {CalibrationMethod.MINMAX: CM.MinMax, CalibrationMethod.ENTROPY: CM.Entropy,
              CalibrationMethod.PERCENTILE: CM.Percentile}[recipe.calibration_method]
    with tempfile.TemporaryDirectory(prefix="edgeopt-q-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        with _quiet():
            try:
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            except Exception:  # noqa: BLE001 - pre-processing is an optimisation, not required
                pre.write_bytes(src.read_bytes())
            quantize_static(
                str(pre), str(dst), _Reader(name, recipe.calibration, units),
                quant_format=QF.QDQ if recipe.quant_format is QuantFormat.QDQ else QF.QOperator,
                per_channel=recipe.per_channel, weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8 if recipe.unsigned_activations else QuantType.QInt8,
                calibrate_method=method, nodes_to_exclude=list(recipe.nodes_to_exclude),
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        model = load_onnx(dst, check=False, external_data=True)
        kept = _keep_float(model, recipe.nodes_to_exclude) if recipe.nodes_to_exclude else 0
        order = [tuple(n.output) for n in model.graph.node]
        _topological(model)  # quantize_static can leave inlined function nodes after their users
        if kept or order != [tuple(n.output) for n in model.graph.node]:
            onnx.save(model, str(dst))


_FLOAT_WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm")


def _keep_float(model: Any, names: tuple[str, ...]) -> int:
    """Stop onnxruntime re-quantizing the Conv/Gemm nodes we kept in float; returns how many were guarded.

    At session creation onnxruntime (1.20+, WeightBiasQuantization, on by default) quantizes the float32 weight of
    a Conv/ConvTranspose/Gemm fed by a DequantizeLinear to per-tensor int8, undoing the exclusion. The pass skips
    nodes whose bias is not an initializer, so the kept node's bias (a zero bias if it had none) is fed by a
    DequantizeLinear of int32 values with per-element scale |b| / 2^30: float32-exact, and never folded.
    """
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    guarded = 0
    for node in list(g.node):
        if node.name not in names or node.op_type not in _FLOAT_WEIGHT_OPS or len(node.input) < 2:
            continue
        dq, w = producer.get(node.input[0]), inits.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or w is None or w.data_type != TensorProto.FLOAT:
            continue
        if len(node.input) > 2 and node.input[2]:
            b = inits.get(node.input[2])
            if b is None or len(b.dims) != 1 or b.data_type != TensorProto.FLOAT:
                continue  # not an initializer bias: the pass leaves this node alone already
            bias, stem = numpy_helper.to_array(b).astype(np.float64), f"{node.input[2]}_float32"
        else:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            bias, stem = np.zeros(_output_channels(node.op_type, attrs, tuple(w.dims))), f"{node.name}_zero_bias"
        scale = (np.abs(bias) / 2**30).astype(np.float32)  # 2^30 steps: finer than float32, no int32 overflow
        scale = np.where(scale > 0, scale, np.float32(1.0))
        q = np.clip(np.round(bias / scale.astype(np.float64)), -(2**31) + 1, 2**31 - 1).astype(np.int32)
        g.initializer.extend([numpy_helper.from_array(q, f"{stem}_int32"),
                              numpy_helper.from_array(scale, f"{stem}_scale")])
        g.node.insert(list(g.node).index(node), helper.make_node(
            "DequantizeLinear", [f"{stem}_int32", f"{stem}_scale"], [stem], name=f"{stem}_DequantizeLinear", axis=0))
        if len(node.input) > 2:
            node.input[2] = stem
        else:
            node.input.append(stem)
        guarded += 1
    if guarded:
        used = {i for n in g.node for i in n.input}
        keep = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
    return guarded


def _output_channels(op: str, attrs: dict[str, Any], w: tuple[int, ...]) -> int:
    if op == "Gemm":
        return int(w[0] if attrs.get("transB", 0) else w[1])
    if op == "ConvTranspose":
        return int(w[1]) * int(attrs.get("group", 1))
    return int(w[0])


def _uses(node: Any) -> set[str]:
    """The names a node reads: its inputs and, for If/Loop/Scan, every name its bodies read (outer-scope values)."""
    names = set(node.input)
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for n in g.node:
                names |= _uses(n)
    return names


def _topological(model: Any) -> Any:
    """Order nodes so every input is produced before use (the float16 pass appends its input casts last;
    onnxruntime's int8 pass can put a value a Scan body reads after the Scan).

    Kahn's algorithm, taking ready nodes in their original order.
    """
    import heapq

    g = model.graph
    nodes = list(g.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    waiting = [0] * len(nodes)
    consumers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        deps = {producer[x] for x in _uses(n) if x in producer and producer[x] != i}
        waiting[i] = len(deps)
        for d in deps:
            consumers.setdefault(d, []).append(i)
    heap = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for c in consumers.get(i, ()):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(heap, c)
    if len(order) != len(nodes):  # a cycle: leave the graph as it was
        return model
    del g.node[:]
    g.node.extend(nodes[i] for i in order)
    return model
