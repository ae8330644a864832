"""Read an .onnx model without TensorFlow: checked, shape-inferred, params and MACs per node.

    graph = read_onnx("model.onnx")
    graph.params, graph.macs, graph.op_counts, graph.notes

MACs are per single sample for every op: the leading (batch) dimension of an
output is not counted, and a dynamic dimension counts as 1. Counted: Conv,
ConvInteger, QLinearConv, ConvTranspose, MatMul, MatMulInteger, QLinearMatMul,
Gemm, and LSTM / GRU / RNN (gates x hidden x (input + hidden) per time step and
direction, times the sequence length when it is known).
QDQ models count like float ones: a Conv whose weight comes from
DequantizeLinear takes the weight shape from the quantized initializer.
Params are elements of initializers (and Constant nodes), except the metadata
inputs of ops (shapes, quantization scales and zero points).

Control flow (If / Loop / Scan): the nodes of every body are listed after their
parent, named `PARENT/ATTR/NODE`, with `scope` set to the parent's path; the
graph totals sum only top-level nodes, and a control-flow node carries its
bodies' totals:
- params: every body (all of them are stored in the file);
- If MACs: the most expensive branch (an upper bound: only one branch runs);
- Loop MACs: the body times the trip count when it is a constant, else the body
  once (per iteration); Scan MACs: the body times the scanned length when known,
  else once. `notes` says which assumption each control-flow node used.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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
    "QLinearConcat": (0, 1), "Loop": (0, 1), "If": (0,),
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
    scope: str = ""  # "" at top level; else the path of the enclosing If/Loop/Scan body, e.g. "if0/then_branch"


@dataclass(frozen=True)
class OnnxGraph:
    path: str
    size_bytes: int
    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: tuple[OnnxTensor, ...]
    outputs: tuple[OnnxTensor, ...]
    nodes: tuple[OnnxNode, ...]  # top-level nodes, each followed by the nodes of its bodies
    shapes_inferred: bool
    notes: tuple[str, ...] = ()  # how control-flow bodies and recurrent ops were counted

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes if not n.scope)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes if not n.scope)

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


def read_onnx(path: Path, shapes: Mapping[str, tuple[int, ...]] | None = None) -> OnnxGraph:
    """`shapes` (edgeopt.runtime.shapes): sizes for symbolic input dimensions, applied before shape inference."""
    from edgeopt.runtime.verify_onnx import verify_onnx

    onnx = _onnx()
    path = Path(path)
    model = verify_onnx(path)  # parsed and checked, external data confined (dims are all this needs)
    notes: list[str] = []
    if shapes:
        notes.append(f"MACs for input shape {_set_input_shapes(model, shapes)}")
    inferred = True
    # Shape inference runs in C++ (Ctrl-C waits for it) and inlines model-local functions; it stays in this
    # process, without a child and timeout, because verify_onnx above has bounded the expanded graph
    # (edgeopt.runtime.onnx_expansion, EDGEOPT_MAX_ONNX_NODES): its cost is linear in that count, about 5 s of
    # CPU at the 1,000,000-node cap (a 990k-node chain: 4.6 s), so Ctrl-C waits seconds at worst; a child
    # would cost every inspect its start-up and a copy of the model (Reshape shapes need the initializers).
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort; shapes may stay unknown
        inferred = False
    g = model.graph
    walk = _Walk(onnx)
    walk.graph(g, {}, {}, "")
    shapes_, dtypes = walk.top_shapes, walk.top_dtypes
    init_set = {i.name for i in g.initializer}
    inputs = tuple(OnnxTensor(v.name, shapes_.get(v.name, ()), dtypes.get(v.name, "unknown")) for v in g.input if v.name not in init_set)
    outputs = tuple(OnnxTensor(v.name, shapes_.get(v.name, ()), dtypes.get(v.name, "unknown")) for v in g.output)
    unsized = [t for t in inputs if any(d <= 0 for d in t.shape[1:])]
    if unsized and any(n.macs for n in walk.nodes):
        listed = ", ".join(f"{t.name}=[{', '.join('?' if d <= 0 else str(d) for d in t.shape)}]" for t in unsized)
        from edgeopt.runtime.shapes import shape_hint

        notes.append(f"MACs count symbolic dimensions as 1 ({listed}), so they are a lower bound; "
                     f"give {shape_hint((t.name, t.shape) for t in unsized)} for the real count")
    return OnnxGraph(path=str(path), size_bytes=path.stat().st_size, ir_version=int(model.ir_version),
                     opsets={(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
                     producer=" ".join(x for x in (model.producer_name, model.producer_version) if x),
                     inputs=inputs, outputs=outputs, nodes=tuple(walk.nodes), shapes_inferred=inferred,
                     notes=(*notes, *walk.notes))


def _set_input_shapes(model: Any, shapes: Mapping[str, tuple[int, ...]]) -> str:
    """Write `shapes` into the graph inputs (checked: names, ranks, fixed dims); returns them described."""
    from edgeopt.runtime.base import TensorInfo
    from edgeopt.runtime.shapes import describe_shapes, resolve_inputs

    g = model.graph
    init = {t.name for t in g.initializer}
    data = [v for v in g.input if v.name not in init]
    infos = tuple(TensorInfo(v.name, _shape_of_type(v.type) or (), "float32") for v in data)
    resolved = resolve_inputs(infos, shapes)
    for v, info in zip(data, resolved, strict=True):
        dims = v.type.tensor_type.shape.dim
        while len(dims) < len(info.shape):  # an input declared without a shape
            dims.add()
        for d, size in zip(v.type.tensor_type.shape.dim, info.shape, strict=True):
            d.dim_value = size  # clears dim_param (a oneof)
    del g.value_info[:]  # stale symbolic shapes of intermediate tensors: inferred again
    return describe_shapes(tuple(r for r in resolved if r.name in shapes or "" in shapes))


class _Walk:
    """Visits a graph and, depth first, the bodies of its If/Loop/Scan nodes; collects nodes and notes."""

    def __init__(self, onnx: Any) -> None:
        self._onnx = onnx
        self.nodes: list[OnnxNode] = []
        self.notes: list[str] = []
        self.counted: set[str] = set()  # initializers already counted (an outer weight used in a body counts once)
        self.top_shapes: dict[str, Shape] = {}
        self.top_dtypes: dict[str, str] = {}

    def graph(self, g: Any, outer_shapes: dict[str, Shape], outer_consts: dict[str, Shape], scope: str) -> tuple[int, int]:
        """Append the nodes of `g` (and of its bodies); return its (params, MACs)."""
        shapes: dict[str, Shape] = dict(outer_shapes)
        dtypes: dict[str, str] = {}
        for vi in [*g.input, *g.value_info, *g.output]:
            s = _shape_of_type(vi.type)
            if s is not None:
                shapes[vi.name] = s
            dtypes[vi.name] = _dtype(self._onnx, vi.type.tensor_type.elem_type)
        consts: dict[str, Shape] = dict(outer_consts)
        for init in g.initializer:
            consts[init.name] = tuple(int(d) for d in init.dims)
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value" and a.HasField("t"):
                        consts[node.output[0]] = tuple(int(d) for d in a.t.dims)
        for name, s in consts.items():
            shapes.setdefault(name, s)
        if not scope:
            self.top_shapes, self.top_dtypes = shapes, dtypes
        producer = {o: n for n in g.node for o in n.output}
        const_values = {t.name: t for t in g.initializer}  # for Loop trip counts
        const_values.update({n.output[0]: a.t for n in g.node if n.op_type == "Constant"
                             for a in n.attribute if a.name == "value" and a.HasField("t")})

        def weight_shape(name: str) -> Shape:
            """Shape of a weight, looking through DequantizeLinear to its quantized initializer."""
            n = producer.get(name)
            if name not in consts and n is not None and n.op_type == "DequantizeLinear" and n.input and n.input[0] in consts:
                return consts[n.input[0]]
            return shapes.get(name, ())

        total_params = total_macs = 0
        for i, n in enumerate(g.node):
            if n.op_type == "Constant":
                continue  # its tensor is counted where it is used
            meta = _META_INPUTS.get(n.op_type, ())
            params = 0
            for k, name in enumerate(n.input):
                if name in consts and name not in self.counted and k not in meta:
                    self.counted.add(name)
                    params += _elems(consts[name]) if consts[name] else 1
            out_shape = shapes.get(n.output[0], ()) if n.output else ()
            op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
            name = n.name or f"{n.op_type}_{i}"
            path = f"{scope}/{name}" if scope else name
            index = len(self.nodes)
            self.nodes.append(OnnxNode(name=path, op=op, inputs=tuple(n.input), outputs=tuple(n.output),
                                       output_shape=out_shape, params=params, macs=0, scope=scope))
            bodies = [(a.name, a.g) for a in n.attribute if a.HasField("g")]
            bodies += [(f"{a.name}{j}", sub) for a in n.attribute for j, sub in enumerate(a.graphs)]
            if bodies and n.domain in ("", "ai.onnx"):
                counts = [(attr, *self.graph(body, shapes, consts, f"{path}/{attr}")) for attr, body in bodies]
                params += sum(c[1] for c in counts)
                macs = self._control_macs(n, path, counts, shapes, const_values)
            else:
                macs = _macs(n, out_shape, shapes, weight_shape)
                if n.op_type in _RNN_GATES and n.domain in ("", "ai.onnx"):
                    macs = self._rnn_macs(n, path, shapes, weight_shape)
            self.nodes[index] = replace(self.nodes[index], params=params, macs=macs)
            total_params += params
            total_macs += macs
        return total_params, total_macs

    def _control_macs(self, n: Any, path: str, counts: list[tuple[str, int, int]], shapes: dict[str, Shape],
                      const_values: dict[str, Any]) -> int:
        if n.op_type == "If":
            attr, _, macs = max(counts, key=lambda c: c[2])
            self.notes.append(f"If '{path}': MACs count its most expensive branch ({attr}, {macs:,}); only one branch "
                              "runs per inference, so this is an upper bound; params count every branch")
            return macs
        body = sum(c[2] for c in counts)
        trips = 0
        if n.op_type == "Loop" and n.input and n.input[0] in const_values:
            from onnx import numpy_helper

            value = numpy_helper.to_array(const_values[n.input[0]]).reshape(-1)
            trips = int(value[0]) if value.size == 1 and 0 < int(value[0]) < 2**31 else 0
        if n.op_type == "Scan":
            attrs = {a.name: a for a in n.attribute}
            scans = int(attrs["num_scan_inputs"].i) if "num_scan_inputs" in attrs else 0
            axes = list(attrs["scan_input_axes"].ints) if "scan_input_axes" in attrs else []
            if scans:
                first = shapes.get(n.input[len(n.input) - scans], ())
                axis = axes[0] if axes else 0
                axis = axis + len(first) if axis < 0 else axis
                trips = first[axis] if 0 <= axis < len(first) and first[axis] > 0 else 0
        if trips:
            self.notes.append(f"{n.op_type} '{path}': MACs = body ({body:,}) x {trips} iterations")
            return body * trips
        self.notes.append(f"{n.op_type} '{path}': iteration count unknown; MACs count the body once ({body:,}, per iteration)")
        return body

    def _rnn_macs(self, n: Any, path: str, shapes: dict[str, Shape], weight_shape: Callable[[str], Shape]) -> int:
        """gates x hidden x (input + hidden) per time step and direction (the W and R matrix products)."""
        if len(n.input) < 3:
            return 0
        w, r = weight_shape(n.input[1]), weight_shape(n.input[2])  # W [dirs, gates*H, I], R [dirs, gates*H, H]
        if len(w) != 3 or len(r) != 3 or min(*w, *r) <= 0:
            return 0
        per_step = w[0] * w[1] * (w[2] + r[2])
        layout = next((int(a.i) for a in n.attribute if a.name == "layout"), 0)
        x = shapes.get(n.input[0], ())
        steps = x[1 if layout else 0] if len(x) == 3 else -1
        if steps > 0:
            return per_step * steps
        self.notes.append(f"{n.op_type} '{path}': sequence length unknown; MACs are per time step ({per_step:,})")
        return per_step


_RNN_GATES = frozenset({"LSTM", "GRU", "RNN"})  # W is [directions, gates * hidden, input]


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
        return _elems(out[1:] if len(out) >= 2 else out) * k if k > 0 else 0
    if op == "Gemm" and len(ins) >= 2:
        attrs = {a.name: a.i for a in n.attribute}
        a, b = shapes.get(ins[0], ()), weight_shape(ins[1])
        k = 0
        if len(a) == 2 and a[1 if not attrs.get("transA", 0) else 0] > 0:
            k = a[1 if not attrs.get("transA", 0) else 0]
        elif len(b) == 2:
            k = b[0 if not attrs.get("transB", 0) else 1]
        return _elems(out[1:]) * k if k > 0 else 0  # out is [batch, N]: per sample
    return 0
