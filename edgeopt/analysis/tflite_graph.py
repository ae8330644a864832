"""Read a .tflite flatbuffer without TensorFlow: ops, tensors, params, MACs.

Uses the flatbuffer accessors generated from the TFLite schema that ship with
ai-edge-litert (`ai_edge_litert.schema_py_generated`, on top of the
`flatbuffers` package). Every read is bounds-checked, so a corrupt file raises
`ModelFileError` with one line instead of crashing a native runtime later.

    graph = read_tflite("model.tflite")
    graph.op_names          # ("CONV_2D", "FULLY_CONNECTED", ...)
    graph.macs, graph.params
    check_tflite(path)      # structural sanity check only
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from edgeopt.errors import ModelFileError, RuntimeUnavailableError, first_line

FILE_IDENTIFIER = b"TFL3"

# TensorType value -> numpy-style dtype name (non-numpy types keep a readable name).
_DTYPE_NAMES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
    "STRING": "string", "BOOL": "bool", "INT16": "int16", "COMPLEX64": "complex64", "INT8": "int8",
    "FLOAT64": "float64", "COMPLEX128": "complex128", "UINT64": "uint64", "RESOURCE": "resource",
    "VARIANT": "variant", "UINT32": "uint32", "UINT16": "uint16", "INT4": "int4", "BFLOAT16": "bfloat16",
    "INT2": "int2", "UINT4": "uint4", "FLOAT8_E4M3FN": "float8_e4m3fn", "FLOAT8_E5M2": "float8_e5m2",
}

# Ops whose MACs we estimate; all other ops count 0 MACs.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV")


@dataclass(frozen=True)
class TfliteTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 for a dynamic dimension
    dtype: str  # numpy dtype name, e.g. "int8", "float32"
    scale: tuple[float, ...]  # empty when not quantized; one per channel when per-channel
    zero_point: tuple[int, ...]
    quantized_dimension: int
    buffer: int  # index into the model's buffers (0 = no data)
    const_bytes: int  # bytes of constant data held for this tensor (0 for activations)
    is_variable: bool

    @property
    def is_constant(self) -> bool:
        return self.const_bytes > 0

    @property
    def quantized(self) -> bool:
        return bool(self.scale) and any(s != 0.0 for s in self.scale)

    @property
    def elements(self) -> int:
        return math.prod(max(d, 1) for d in self.shape) if self.shape else 1


@dataclass(frozen=True)
class TfliteOp:
    index: int
    op: str  # BuiltinOperator name (e.g. "CONV_2D") or the custom code of a custom op
    custom: bool
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 for an omitted optional input
    outputs: tuple[int, ...]
    input_dtypes: tuple[str, ...]  # "" for an omitted input
    output_dtypes: tuple[str, ...]
    macs: int
    params: int  # elements of the constant inputs (weights, biases)
    # VAR_HANDLE only: the resource variable it names, (container, shared_name); "" for an absent string
    variable: tuple[str, str] | None = None


@dataclass(frozen=True)
class TfliteSubgraph:
    name: str
    tensors: tuple[TfliteTensor, ...]
    operators: tuple[TfliteOp, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class TfliteGraph:
    path: str  # "" when read from bytes
    size_bytes: int
    schema_version: int
    description: str
    subgraphs: tuple[TfliteSubgraph, ...]
    param_bytes: int  # bytes of constant data over unique buffers

    # The main subgraph (0) is what runtimes execute; the shortcuts below refer to it,
    # the op-level totals cover every subgraph (control flow bodies included).
    @property
    def main(self) -> TfliteSubgraph:
        return self.subgraphs[0]

    @property
    def tensors(self) -> tuple[TfliteTensor, ...]:
        return self.main.tensors

    @property
    def inputs(self) -> tuple[TfliteTensor, ...]:
        return tuple(self.main.tensors[i] for i in self.main.inputs)

    @property
    def outputs(self) -> tuple[TfliteTensor, ...]:
        return tuple(self.main.tensors[i] for i in self.main.outputs)

    @property
    def operators(self) -> tuple[TfliteOp, ...]:
        return tuple(op for sg in self.subgraphs for op in sg.operators)

    @property
    def op_names(self) -> tuple[str, ...]:
        """Distinct op names, sorted."""
        return tuple(sorted({op.op for op in self.operators}))

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.op for op in self.operators).items()))

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.operators)

    @property
    def resource_variables(self) -> tuple[tuple[str, str], ...]:
        """Distinct (container, shared_name) of the VAR_HANDLE ops of every subgraph, sorted."""
        return tuple(sorted({op.variable for op in self.operators if op.variable is not None}))

    @property
    def params(self) -> int:
        """Elements of constant tensors, each buffer counted once."""
        seen: dict[int, int] = {}
        for sg in self.subgraphs:
            for t in sg.tensors:
                if t.is_constant:
                    seen.setdefault(t.buffer, t.elements)
        return sum(seen.values())


# --------------------------------------------------------------------------- schema access


@cache
def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        msg = "reading .tflite files needs ai-edge-litert (its flatbuffer schema); install it with: pip install ai-edge-litert"
        raise RuntimeUnavailableError(
            msg) from None
    return schema


@cache
def _enum_names(enum_name: str) -> dict[int, str]:
    cls = getattr(_schema(), enum_name)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def builtin_op_name(code: int) -> str:
    return _enum_names("BuiltinOperator").get(code, f"BUILTIN_{code}")


def dtype_name(tensor_type: int) -> str:
    name = _enum_names("TensorType").get(tensor_type)
    return _DTYPE_NAMES.get(name or "", f"type{tensor_type}")


class _Corrupt(Exception):
    pass


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise _Corrupt(what)


class _Work:
    """What is left of the parse budget: bytes of vectors and strings read, at most WORK_FACTOR x the file.

    In a well-formed file every vector is read once, so the total is below the file size; a file whose
    table offsets alias one table (30,000 tensor slots pointing at one tensor with a long shape) would
    otherwise cost (slots x vector length): quadratic in the file size.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = WORK_FACTOR * size + WORK_SLACK

    def spend(self, nbytes: int, what: str) -> None:
        self.left -= nbytes
        _need(self.left >= 0, f"{what}: the tables read more data than the file holds ({self.size} bytes); "
                              "offsets alias one table")


WORK_FACTOR = 2
MAX_ELEMENTS = 1 << 40  # a tensor of a trillion elements is a corrupt shape, not an edge model
WORK_SLACK = 1 << 16


def _len(n: int, work: _Work, what: str, min_elem: int = 4) -> int:
    _need(n >= 0 and n * min_elem <= work.size, f"{what} has an impossible length {n}")
    work.spend(n * min_elem + 4, what)
    return n


def _text(raw: bytes | None, work: _Work, what: str) -> str | None:
    if raw is None:
        return None
    work.spend(len(raw), what)
    return raw.decode("utf-8", "replace")


def _vector_span(table: Any, slot: int) -> tuple[int, int] | None:
    """(start, length) of the vector in field `slot` (4, 6, 8, ...) of a flatbuffer table."""
    o = table.Offset(slot)
    if o == 0:
        return None
    return table.Vector(o), table.VectorLen(o)


# --------------------------------------------------------------------------- reading


def read_tflite(source: str | Path | bytes) -> TfliteGraph:
    """Parse a .tflite file (path or bytes). Raises ModelFileError on a corrupt or non-TFLite file."""
    data, label = _load(source)
    try:
        return _parse(data, label)
    except ModelFileError:
        raise
    except RuntimeUnavailableError:
        raise
    except _Corrupt as exc:
        msg = f"{label}: corrupt .tflite flatbuffer: {exc}; re-export the model"
        raise ModelFileError(msg) from None
    except Exception as exc:  # noqa: BLE001 - generated accessors raise struct.error, IndexError, ValueError...
        import struct

        if isinstance(exc, struct.error | IndexError):
            reason = "an offset points outside the file (truncated or overwritten)"
        else:
            reason = f"{type(exc).__name__}: {first_line(exc, 120)}"
        msg = f"{label}: corrupt .tflite flatbuffer: {reason}; re-export the model"
        raise ModelFileError(msg) from None


def check_tflite(source: str | Path | bytes) -> None:
    """Structural sanity check of a .tflite flatbuffer; raises ModelFileError with one line if corrupt.

    Cheap enough to run before handing a file to a native runtime (LiteRT, TFLM),
    which may crash the process on a malformed flatbuffer instead of raising.
    """
    read_tflite(source)


def _load(source: str | Path | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "<bytes>"
    from edgeopt.input_files import read_regular

    path = Path(source)
    return read_regular(path, "model", ModelFileError), str(path)


def _parse(buf: bytes, label: str) -> TfliteGraph:
    n = len(buf)
    if n == 0:
        msg = f"{label}: empty file; give a .tflite model"
        raise ModelFileError(msg)
    if n < 8 or buf[4:8] != FILE_IDENTIFIER:
        msg = f"{label}: not a .tflite flatbuffer (no 'TFL3' identifier); give a .tflite model"
        raise ModelFileError(msg)
    schema = _schema()
    import flatbuffers

    root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0)
    _need(8 <= root < n, f"root table offset {root} outside the file ({n} bytes)")
    model = schema.Model.GetRootAs(buf, 0)
    work = _Work(n)

    n_codes = _len(model.OperatorCodesLength(), work, "operator_codes")
    codes: list[tuple[str, bool, int]] = []
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        custom = _text(oc.CustomCode(), work, f"operator code {i}")
        builtin = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if custom is not None and builtin == schema.BuiltinOperator.CUSTOM:
            codes.append((custom, True, int(oc.Version())))
        else:
            codes.append((builtin_op_name(builtin), False, int(oc.Version())))

    n_buffers = _len(model.BuffersLength(), work, "buffers")
    buffer_bytes: list[int] = []
    for i in range(n_buffers):
        b = model.Buffers(i)
        span = _vector_span(b._tab, 4)
        size = 0
        if span is not None:
            start, length = span
            _need(start >= 0 and start + length <= n, f"buffer {i} data runs past the end of the file")
            size = length
        off, ext = int(b.Offset()), int(b.Size())
        if off > 1:  # data stored after the flatbuffer (models over 2 GB)
            _need(off + ext <= n, f"buffer {i} offset {off} + size {ext} runs past the end of the file")
            size = ext
        buffer_bytes.append(size)

    n_sub = _len(model.SubgraphsLength(), work, "subgraphs")
    _need(n_sub >= 1, "the model has no subgraph")
    subgraphs = tuple(_subgraph(schema, model.Subgraphs(s), s, codes, buffer_bytes, work) for s in range(n_sub))
    desc = _text(model.Description(), work, "description")
    param_bytes = sum(buffer_bytes[t.buffer] for t in {t.buffer: t for sg in subgraphs for t in sg.tensors if t.is_constant}.values())
    return TfliteGraph(path="" if label == "<bytes>" else label, size_bytes=n, schema_version=int(model.Version()),
                       description=desc or "", subgraphs=subgraphs,
                       param_bytes=param_bytes)


def _ints(getter: Any, length: int) -> tuple[int, ...]:
    return tuple(int(getter(j)) for j in range(length))


def _subgraph(schema: Any, sg: Any, s: int, codes: list[tuple[str, bool, int]], buffer_bytes: list[int], work: _Work) -> TfliteSubgraph:
    n_tensors = _len(sg.TensorsLength(), work, f"subgraph {s} tensors")
    tensors = tuple(_tensor(sg.Tensors(i), i, s, buffer_bytes, work) for i in range(n_tensors))

    def check_refs(refs: tuple[int, ...], what: str, optional: bool) -> None:
        for r in refs:
            _need(0 <= r < n_tensors or (optional and r == -1), f"subgraph {s} {what} names tensor {r} of {n_tensors}")

    inputs = _ints(sg.Inputs, _len(sg.InputsLength(), work, "subgraph inputs"))
    outputs = _ints(sg.Outputs, _len(sg.OutputsLength(), work, "subgraph outputs"))
    check_refs(inputs, "input", False)
    check_refs(outputs, "output", False)

    ops = []
    for i in range(_len(sg.OperatorsLength(), work, f"subgraph {s} operators")):
        o = sg.Operators(i)
        idx = int(o.OpcodeIndex())
        _need(0 <= idx < len(codes), f"operator {i} uses opcode {idx} of {len(codes)}")
        name, custom, version = codes[idx]
        ins = _ints(o.Inputs, _len(o.InputsLength(), work, f"operator {i} inputs"))
        outs = _ints(o.Outputs, _len(o.OutputsLength(), work, f"operator {i} outputs"))
        check_refs(ins, f"operator {i} ({name}) input", True)
        check_refs(outs, f"operator {i} ({name}) output", True)
        in_t = [tensors[j] if j >= 0 else None for j in ins]
        out_t = [tensors[j] if j >= 0 else None for j in outs]
        params = sum(t.elements for t in in_t if t is not None and t.is_constant)
        macs = 0 if custom else _macs(schema, name, o, in_t, out_t)
        variable = _variable(schema, o, work, i) if name == "VAR_HANDLE" and not custom else None
        ops.append(TfliteOp(index=i, op=name, custom=custom, version=version, inputs=ins, outputs=outs,
                            input_dtypes=tuple(t.dtype if t else "" for t in in_t),
                            output_dtypes=tuple(t.dtype if t else "" for t in out_t), macs=macs, params=params,
                            variable=variable))
    sg_name = _text(sg.Name(), work, f"subgraph {s} name")
    return TfliteSubgraph(name=sg_name or "", tensors=tensors, operators=tuple(ops),
                          inputs=inputs, outputs=outputs)


def _variable(schema: Any, o: Any, work: _Work, i: int) -> tuple[str, str]:
    """A VAR_HANDLE's (container, shared_name) from its VarHandleOptions; ("", "") without options."""
    if int(o.BuiltinOptionsType()) != schema.BuiltinOptions.VarHandleOptions or o.BuiltinOptions() is None:
        return "", ""
    table = o.BuiltinOptions()
    opts = schema.VarHandleOptions()
    opts.Init(table.Bytes, table.Pos)
    return (_text(opts.Container(), work, f"operator {i} container") or "",
            _text(opts.SharedName(), work, f"operator {i} shared_name") or "")


def _tensor(t: Any, i: int, s: int, buffer_bytes: list[int], work: _Work) -> TfliteTensor:
    shape = _ints(t.Shape, _len(t.ShapeLength(), work, f"tensor {i} shape"))
    sig = _ints(t.ShapeSignature, _len(t.ShapeSignatureLength(), work, f"tensor {i} shape_signature")) or shape
    elements = math.prod(max(d, 1) for d in shape) if shape else 1
    _need(elements <= MAX_ELEMENTS, f"subgraph {s} tensor {i} has an impossible shape of rank {len(shape)} "
                                    "(over 2**40 elements)")
    b = int(t.Buffer())
    _need(0 <= b < max(len(buffer_bytes), 1), f"subgraph {s} tensor {i} uses buffer {b} of {len(buffer_bytes)}")
    q = t.Quantization()
    scale: tuple[float, ...] = ()
    zp: tuple[int, ...] = ()
    qdim = 0
    if q is not None:
        scale = tuple(float(q.Scale(j)) for j in range(_len(q.ScaleLength(), work, f"tensor {i} scale")))
        zp = _ints(q.ZeroPoint, _len(q.ZeroPointLength(), work, f"tensor {i} zero_point", 8))
        qdim = int(q.QuantizedDimension())
    name = _text(t.Name(), work, f"tensor {i} name")
    return TfliteTensor(index=i, name=name or f"tensor_{i}", shape=shape,
                        shape_signature=sig, dtype=dtype_name(int(t.Type())), scale=scale, zero_point=zp,
                        quantized_dimension=qdim, buffer=b,
                        const_bytes=buffer_bytes[b] if buffer_bytes else 0, is_variable=bool(t.IsVariable()))


def _elems(shape: tuple[int, ...]) -> int:
    return math.prod(max(d, 1) for d in shape) if shape else 1


def _macs(schema: Any, name: str, op: Any, ins: list[TfliteTensor | None], outs: list[TfliteTensor | None]) -> int:
    """Multiply-accumulates of one op (0 for ops outside MAC_OPS or with unknown shapes)."""
    if name not in MAC_OPS or not outs or outs[0] is None:
        return 0
    out = _elems(outs[0].shape)

    def shape(k: int) -> tuple[int, ...]:
        t = ins[k] if k < len(ins) else None
        return t.shape if t is not None else ()

    if name == "CONV_2D":  # filter [O, H, W, I/groups]
        w = shape(1)
        return out * _elems(w[1:]) if len(w) == 4 else 0
    if name == "DEPTHWISE_CONV_2D":  # filter [1, H, W, O]
        w = shape(1)
        return out * w[1] * w[2] if len(w) == 4 else 0
    if name == "FULLY_CONNECTED":  # weights [O, I]
        w = shape(1)
        return out * w[-1] if len(w) >= 2 else 0
    if name == "BATCH_MATMUL":  # A [..., M, K] (or [..., K, M] with adj_x)
        a = shape(0)
        if len(a) < 2:
            return 0
        adj_x = False
        if op.BuiltinOptionsType() == schema.BuiltinOptions.BatchMatMulOptions:
            opts = schema.BatchMatMulOptions()
            tab = op.BuiltinOptions()
            opts.Init(tab.Bytes, tab.Pos)
            adj_x = bool(opts.AdjX())
        return out * (a[-2] if adj_x else a[-1])
    if name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [O, H, W, I], input
        w, x = shape(1), shape(2)
        return _elems(x) * w[0] * w[1] * w[2] if len(w) == 4 and x else 0
    return 0
