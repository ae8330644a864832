"""Integer-only check for a microcontroller: int8 weights and activations, int8 I/O.

A float tensor anywhere (a float op left in an int8 model, float input/output with
QUANTIZE/DEQUANTIZE at the edges) fails and names the ops. int16 activations are
allowed only when the profile allows int16x8 (`[mcu] allow_int16x8`). int32/int64
tensors are accepted (biases, shapes, indices).

The model's I/O types are one rule for `mcu check` and `mcu run`: I/O of another type than the profile's is an
`io_issue`, which `edgeopt build` (making the profile's types) refuses and the others report. A QUANTIZE that
converts a graph input, or a (DE)QUANTIZE that makes a graph output, is an I/O conversion (`io_edge_ops`): it
is what float32 or int16 I/O costs on the device, not a float op inside the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.analysis.tflite_graph import TfliteGraph
from edgeopt.profiles.schema import IOType, Profile

FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})


@dataclass(frozen=True)
class IntegerCheck:
    float_ops: tuple[str, ...]  # "OP#index" of ops with a float input or output
    int16_ops: tuple[str, ...]  # ops with int16 activations (a failure unless int16x8 is allowed)
    io_issues: tuple[str, ...]  # "input 0 'name' is float32, profile wants int8"
    io_edge_ops: tuple[str, ...] = ()  # those of float_ops / int16_ops that only convert a graph input or output

    def io_as_found(self) -> IntegerCheck:
        """The check with the model's I/O types taken as they are: I/O issues and I/O conversions are not failures."""
        edges = set(self.io_edge_ops)
        return IntegerCheck(tuple(o for o in self.float_ops if o not in edges),
                            tuple(o for o in self.int16_ops if o not in edges), (), self.io_edge_ops)

    @property
    def ok(self) -> bool:
        return not (self.float_ops or self.int16_ops or self.io_issues)

    def describe(self) -> str:
        parts = []
        if self.float_ops:
            parts.append(f"float ops left in the graph: {', '.join(self.float_ops[:12])}"
                         + (f" (+{len(self.float_ops) - 12} more)" if len(self.float_ops) > 12 else ""))
        if self.int16_ops:
            parts.append(f"int16 activations (int16x8) in: {', '.join(self.int16_ops[:12])}; set [mcu] allow_int16x8 = true if your kernels support it")
        parts.extend(self.io_issues)
        return "; ".join(parts)


def _wanted_io(kind: IOType, allow16: bool) -> set[str]:
    if kind is IOType.INT16:
        return {"int16"}
    # int16x8 models have int16 I/O (the converter offers no int8 I/O for them): accepted wherever int16x8 is.
    extra = {"int16"} if allow16 else set()
    if kind in (IOType.INT8, IOType.UINT8):
        return {str(kind)} | extra
    # The profile keeps float I/O: an MCU still needs integer I/O.
    return {"int8"} | extra


def _io_edges(graph: TfliteGraph) -> tuple[str, ...]:
    sg = graph.main
    ins, outs = set(sg.inputs), set(sg.outputs)
    edges = []
    for op in sg.operators:
        if len(op.inputs) != 1 or len(op.outputs) != 1:
            continue
        into = op.op == "QUANTIZE" and op.inputs[0] in ins and op.output_dtypes[0] in ("int8", "uint8", "int16")
        out_of = op.op in ("QUANTIZE", "DEQUANTIZE") and op.outputs[0] in outs and op.input_dtypes[0] in ("int8", "uint8", "int16")
        if into or out_of:
            edges.append(f"{op.op}#{op.index}")
    return tuple(edges)


def check_integer_only(graph: TfliteGraph, profile: Profile) -> IntegerCheck:
    allow16 = profile.mcu.allow_int16x8
    float_ops: list[str] = []
    int16_ops: list[str] = []
    for op in graph.operators:
        dtypes = {d for d in op.input_dtypes + op.output_dtypes if d}
        label = f"{op.op}#{op.index}"
        if dtypes & FLOAT_DTYPES:
            float_ops.append(label)
        elif "int16" in dtypes and not allow16:
            int16_ops.append(label)
    issues = []
    for kind, tensors, want in (("input", graph.inputs, _wanted_io(profile.quantize.input_type, allow16)),
                                ("output", graph.outputs, _wanted_io(profile.quantize.output_type, allow16))):
        for i, t in enumerate(tensors):
            if t.dtype not in want:
                issues.append(f"{kind} {i} '{t.name}' is {t.dtype}, the profile wants {' or '.join(sorted(want))}"
                              f" (quantize with inference_{kind}_type = tf.int8)")
    return IntegerCheck(tuple(float_ops), tuple(int16_ops), tuple(issues), _io_edges(graph))
