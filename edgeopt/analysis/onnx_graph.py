"""Read an .onnx model without TensorFlow: checked, shape-inferred, params and MACs per node.

    graph = read_onnx("model.onnx")
    graph.params, graph.macs, graph.op_counts

MACs (per single sample: a dynamic batch counts as 1) for Conv, ConvInteger,
QLinearConv, ConvTranspose, MatMul, MatMulInteger, QLinearMatMul and Gemm.
QDQ models count like float ones: a Conv whose weight comes from
DequantizeLinear takes the weight shape from the quantized initializer.
Params are elements of initializers (and Constant nodes), except the metadata
inputs of ops (shapes, quantization scales and zero points).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.errors import RuntimeUnavailableError

Shape = tuple[int, ...]  # -1 for a dynamic or unknown dimension

# Inputs that hold metadata, not weights: (op, input index).
_META_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Resize": (1, 2, 3),
    "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceMean": (1,), "ReduceSum": (1,), "ReduceMax": (1,),
    "Split": (1,), "ConstantOfShape": (0,), "TopK": (1,), "Clip": (1, 2),
    "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "DynamicQuantizeLinear": (),
    "QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearMatMul": (1, 2, 4, 5, 6, 7), "ConvInteger": (2, 3), "MatMulInteger": (2, 3),
    "QLinearAdd": (1, 2, 4, 5, 6, 7), "QLinearMul": (1, 2, 4, 5, 6, 7), "QLinearSigmoid": (1, 2, 3, 4),
    "QLinearLeakyRelu": (1, 2, 3, 4), "QLinearAveragePool": (1, 2, 3, 4), "QLinearGlobalAveragePool": (1, 2, 3, 4),
    "QLinearConcat": (0, 1),
}
# op -> (index of the weight/B input, index of the data/A input)
_CONV_W = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL_AB = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}


@dataclass(frozen=True)
class OnnxTensor:
    name: str
    shape: Shape
    dtype: str  # numpy dtype name


@dataclass(frozen=True)
class OnnxNode:
    name: str
    op: str  # op_type, prefixed with its domain when not the default one
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_shape: Shape
    params: int
    macs: int


@dataclass(frozen=True)
class OnnxGraph:
    path: str
    size_bytes: int
    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: tuple[OnnxTensor, ...]
    outputs: tuple[OnnxTensor, ...]
    nodes: tuple[OnnxNode, ...]
    shapes_inferred: bool

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(n.op for n in self.nodes).items()))


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        msg = "reading .onnx files needs the onnx package; install it with: pip install onnx"
        raise RuntimeUnavailableError(msg) from None
    return onnx


def _dtype(onnx: Any, elem_type: int) -> str:
    try:
        import numpy as np

        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type else "unknown"


def _shape_of_type(tp: Any) -> Shape | None:
    if not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tp.tensor_type.shape.dim)


def _elems(shape: Shape) -> int:
    """Elements per single sample: dynamic dims count as 1."""
    return math.prod(max(d, 1) for d in shape) if shape else 1


def read_onnx(path: Path) -> OnnxGraph:
    from edgeopt.runtime.verify_onnx import verify_onnx

    onnx = _onnx()
    path = Path(path)
    model = verify_onnx(path)  # parsed and checked, external data confined (dims are all this needs)
    inferred = True
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort; shapes may stay unknown
        inferred = False
    g = model.graph
    shapes: dict[str, Shape] = {}
    dtypes: dict[str, str] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        s = _shape_of_type(vi.type)
        if s is not None:
            shapes[vi.name] = s
        dtypes[vi.name] = _dtype(onnx, vi.type.tensor_type.elem_type)
    consts: dict[str, Shape] = {}
    for init in g.initializer:
        consts[init.name] = tuple(int(d) for d in init.dims)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    consts[node.output[0]] = tuple(int(d) for d in a.t.dims)
    for name, s in consts.items():
        shapes.setdefault(name, s)
    producer = {o: n for n in g.node for o in n.output}

    def weight_shape(name: str) -> Shape:
        """Shape of a weight, looking through DequantizeLinear to its quantized initializer."""
        n = producer.get(name)
        if name not in consts and n is not None and n.op_type == "DequantizeLinear" and n.input and n.input[0] in consts:
            return consts[n.input[0]]
        return shapes.get(name, ())

    counted: set[str] = set()
    nodes = []
    init_names = set(consts)
    for i, n in enumerate(g.node):
        if n.op_type == "Constant":
            continue  # its tensor is counted where it is used
        meta = _META_INPUTS.get(n.op_type, ())
        params = 0
        for k, name in enumerate(n.input):
            if name in init_names and name not in counted and k not in meta:
                counted.add(name)
                params += _elems(consts[name]) if consts[name] else 1
        out_shape = shapes.get(n.output[0], ()) if n.output else ()
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
        nodes.append(OnnxNode(name=n.name or f"{n.op_type}_{i}", op=op, inputs=tuple(n.input), outputs=tuple(n.output),
                              output_shape=out_shape, params=params, macs=_macs(n, out_shape, shapes, weight_shape)))
    init_set = {i.name for i in g.initializer}
    inputs = tuple(OnnxTensor(v.name, shapes.get(v.name, ()), dtypes.get(v.name, "unknown")) for v in g.input if v.name not in init_set)
    outputs = tuple(OnnxTensor(v.name, shapes.get(v.name, ()), dtypes.get(v.name, "unknown")) for v in g.output)
    return OnnxGraph(path=str(path), size_bytes=path.stat().st_size, ir_version=int(model.ir_version),
                     opsets={(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
                     producer=" ".join(x for x in (model.producer_name, model.producer_version) if x),
                     inputs=inputs, outputs=outputs, nodes=tuple(nodes), shapes_inferred=inferred)


def _macs(n: Any, out: Shape, shapes: dict[str, Shape], weight_shape: Callable[[str], Shape]) -> int:
    op = n.op_type
    if not out or n.domain not in ("", "ai.onnx"):
        return 0
    ins = list(n.input)
    if op in _CONV_W and len(ins) > _CONV_W[op]:
        w = weight_shape(ins[_CONV_W[op]])  # [M, C/group, k...]
        return _elems(out[1:]) * _elems(w[1:]) if len(w) >= 3 else 0
    if op == "ConvTranspose" and len(ins) > 1:
        w, x = weight_shape(ins[1]), shapes.get(ins[0], ())  # w [C, M/group, k...]
        return _elems(x[1:]) * _elems(w[1:]) if len(w) >= 3 and x else 0
    if op in _MATMUL_AB:
        ia, ib = _MATMUL_AB[op]
        a: Shape = shapes.get(ins[ia], ()) if len(ins) > ia else ()
        b: Shape = weight_shape(ins[ib]) if len(ins) > ib else ()
        k = a[-1] if a and a[-1] > 0 else (b[-2] if len(b) >= 2 else 0)
        return _elems(out) * k if k > 0 else 0
    if op == "Gemm" and len(ins) >= 2:
        attrs = {a.name: a.i for a in n.attribute}
        a, b = shapes.get(ins[0], ()), weight_shape(ins[1])
        k = 0
        if len(a) == 2 and a[1 if not attrs.get("transA", 0) else 0] > 0:
            k = a[1 if not attrs.get("transA", 0) else 0]
        elif len(b) == 2:
            k = b[0 if not attrs.get("transB", 0) else 1]
        return _elems(out) * k if k > 0 else 0
    return 0
