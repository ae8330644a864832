"""An ONNX graph that is already quantized, recognised by its ops (no runtime, no TensorFlow).

    found = quantized_graph(op_names)  # None for a float graph
    found.kind, found.nodes, found.ops, found.describe()

Op names are `op_type`, prefixed `domain:` outside the default domain (edgeopt.analysis.onnx_graph's names), of
every node including If/Loop/Scan bodies. The kinds, strongest first (a graph with several takes the first):
- QOperator: QLinearConv / QLinearMatMul and com.microsoft's QGemm and QLinear* ops (onnxruntime's QOperator
  format);
- com.microsoft quantized ops (DynamicQuantizeLSTM, QAttention, DynamicQuantizeMatMul, MatMulNBits, ...);
- integer: ConvInteger / MatMulInteger / DynamicQuantizeLinear (onnxruntime's quantize_dynamic);
- QDQ: QuantizeLinear / DequantizeLinear around float ops.
edgeopt quantizes float models: a build refuses these (load.source), inspect names them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class QuantizedKind(StrEnum):
    QOPERATOR = "qoperator"
    MICROSOFT = "com.microsoft"
    INTEGER = "integer"
    QDQ = "qdq"


LABEL = {QuantizedKind.MICROSOFT: "com.microsoft quantized ops", QuantizedKind.QOPERATOR: "QOperator",
         QuantizedKind.INTEGER: "ConvInteger/MatMulInteger", QuantizedKind.QDQ: "QDQ"}

_DEFAULT = {"QLinearConv": QuantizedKind.QOPERATOR, "QLinearMatMul": QuantizedKind.QOPERATOR,
            "ConvInteger": QuantizedKind.INTEGER, "MatMulInteger": QuantizedKind.INTEGER,
            "DynamicQuantizeLinear": QuantizedKind.INTEGER,
            "QuantizeLinear": QuantizedKind.QDQ, "DequantizeLinear": QuantizedKind.QDQ}
# com.microsoft contrib ops that take or make quantized tensors (besides every QLinear* one)
_MICROSOFT = frozenset({
    "QAttention", "QEmbedLayerNormalization", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "MatMulNBits", "MatMulBnb4", "GatherBlockQuantized", "QuantizeLinear",
    "DequantizeLinear", "DynamicQuantizeLinear", "QuantizeWithOrder", "DequantizeWithOrder", "QOrderedMatMul",
    "QOrderedAttention", "QOrderedGelu", "QOrderedLayerNormalization", "QOrderedLongformerAttention",
    "DequantizeBFP", "QuantizeBFP", "QuickGeluInt8"})


_SHOWN = 4  # ops named in the one-line description (every op is in to_dict)


@dataclass(frozen=True)
class QuantizedGraph:
    kind: QuantizedKind
    nodes: int  # quantization nodes of every kind found
    ops: dict[str, int]  # those ops by name, with their counts

    def describe(self) -> str:
        ranked = sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0]))
        ops = ", ".join(f"{op} x{n}" for op, n in ranked[:_SHOWN]) + (", ..." if len(ranked) > _SHOWN else "")
        return f"{LABEL[self.kind]}: {self.nodes} quantized node{'s' if self.nodes != 1 else ''} ({ops})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "nodes": self.nodes, "ops": dict(self.ops)}


def _kind(op: str) -> QuantizedKind | None:
    domain, _, name = op.rpartition(":")
    if domain in ("", "ai.onnx"):
        return _DEFAULT.get(name)
    if domain == "com.microsoft" and (name == "QGemm" or name.startswith("QLinear")):
        return QuantizedKind.QOPERATOR
    if domain == "com.microsoft" and name in _MICROSOFT:
        return QuantizedKind.MICROSOFT
    return None


def quantized_graph(ops: Iterable[str]) -> QuantizedGraph | None:
    """What makes a graph with these op names already quantized; None for a float graph."""
    found = Counter(op for op in ops if _kind(op) is not None)
    if not found:
        return None
    kinds = {_kind(op) for op in found}
    kind = next(k for k in QuantizedKind if k in kinds)
    return QuantizedGraph(kind, sum(found.values()), dict(sorted(found.items())))


def op_names(graph: Any) -> list[str]:
    """The op names of an onnx GraphProto's nodes and of its nodes' bodies, depth first."""
    names: list[str] = []
    stack = [graph]
    while stack:
        g = stack.pop()
        for n in g.node:
            names.append(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}")
            for a in n.attribute:
                stack.extend([a.g] if a.HasField("g") else [])
                stack.extend(a.graphs)
    return names
