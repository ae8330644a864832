"""Does TFLite Micro compute what LiteRT computes on a freshly quantized model? If not, which op is first to differ.

A quantizer's output can load and run on TFLM without any error and still be wrong there: an int8 model from
ai-edge-quantizer with a LEAKY_RELU left float between DEQUANTIZE and QUANTIZE gave all-zero outputs on TFLM
while LiteRT was right. So a model meant for a microcontroller is run on host TFLM (edgeopt.mcu.tflm, in a
child) and on LiteRT's builtin kernels (no XNNPACK, one thread) on the same samples before it is accepted:

- an integer output may differ by at most `LSB` steps (the two runtimes' kernels round a few values apart);
- a float output by at most one step of the quantized tensor it was dequantized from (else a relative 1e-4);
- an output that is all zeros on TFLM while LiteRT's is not is a failure whatever its size.

On a failure, `first_difference` reruns both runtimes on a copy of the model whose outputs are every op's
output (the flatbuffer edited with ai_edge_litert's object API, no TensorFlow), walks the ops in execution
order and names the first whose output differs by the same rule; a float op whose inputs come from
DEQUANTIZE and whose output goes to QUANTIZE is named as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.analysis.tflite_graph import TfliteGraph, TfliteTensor, read_tflite
from edgeopt.errors import TflmMismatchError

LSB = 1
FLOAT_RTOL = 1e-4
ARENA_BYTES = 64 * 1024 * 1024  # generous: agreement is about values, the exact arena is measured elsewhere


@dataclass(frozen=True)
class Agreement:
    samples: int
    max_abs_diff: float  # in the output's own units (integer steps for an integer output)
    ok: bool
    problem: str  # "" when ok: what differs ("output 0 differs by 37 steps", "output 0 is all zeros on TFLM")


def _tolerance(graph: TfliteGraph, t: TfliteTensor, ref: np.ndarray) -> float:
    if t.dtype in ("int8", "uint8", "int16", "int32"):
        return float(LSB)
    producer = next((op for op in graph.main.operators if t.index in op.outputs), None)
    if producer is not None and producer.op == "DEQUANTIZE":
        src = graph.main.tensors[producer.inputs[0]]
        if src.scale:
            return float(max(src.scale)) * LSB * 1.0001
    return FLOAT_RTOL * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)


def _zero(t: TfliteTensor, values: np.ndarray) -> bool:
    """All zeros in real terms: every element 0.0, or the zero point for a quantized integer tensor."""
    zp = t.zero_point[0] if t.quantized and t.zero_point else 0
    return bool(values.size) and bool(np.all(values == zp))


def _judge(graph: TfliteGraph, tensors: list[TfliteTensor], tflm: list[list[np.ndarray]],
           ref: list[list[np.ndarray]]) -> list[tuple[float, str]]:
    """Per tensor: (largest difference, problem or "")."""
    out = []
    for k, t in enumerate(tensors):
        a = np.stack([np.asarray(s[k]).reshape(np.asarray(r[k]).shape) for s, r in zip(tflm, ref, strict=True)])
        b = np.stack([np.asarray(r[k]) for r in ref])
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if b.size else 0.0
        problem = ""
        if _zero(t, a) and not _zero(t, b):
            problem = "all zeros on TFLite Micro, not on LiteRT"
        elif diff > _tolerance(graph, t, b):
            unit = " steps" if t.dtype.startswith(("int", "uint")) else ""
            problem = f"differs from LiteRT by {diff:g}{unit}"
        out.append((diff, problem))
    return out


def _run_both(model: Path, feeds: list[list[np.ndarray]]) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    from edgeopt.mcu.compare import litert_outputs
    from edgeopt.mcu.tflm import run_tflm

    tflm = run_tflm(model, ARENA_BYTES, feeds)
    _, ref = litert_outputs(model, feeds)
    return [list(s) for s in tflm.outputs], ref


def check_agreement(model: Path, feeds: list[list[np.ndarray]]) -> Agreement:
    """TFLM vs LiteRT on `feeds` (each sample's inputs, in the model's input order, already in its types)."""
    graph = read_tflite(model)
    tflm, ref = _run_both(model, feeds)
    verdicts = _judge(graph, list(graph.outputs), tflm, ref)
    worst = max((d for d, _ in verdicts), default=0.0)
    problems = [f"output {i} ({graph.outputs[i].name}) is {p}" if p.startswith("all") else
                f"output {i} ({graph.outputs[i].name}) {p}" for i, (_, p) in enumerate(verdicts) if p]
    return Agreement(len(feeds), worst, not problems, "; ".join(problems))


def sandwiched_float_ops(graph: TfliteGraph) -> list[str]:
    """Float ops fed by DEQUANTIZE and feeding QUANTIZE, as labels "LEAKY_RELU#7"."""
    ops = graph.main.operators
    producer = {o: op for op in ops for o in op.outputs}
    consumers: dict[int, list[str]] = {}
    for op in ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op.op)
    out = []
    for op in ops:
        if op.op in ("DEQUANTIZE", "QUANTIZE") or "float32" not in op.output_dtypes:
            continue
        fed = [producer[i].op for i in op.inputs if i in producer]
        feeds = [c for o in op.outputs for c in consumers.get(o, [])]
        if fed and all(f == "DEQUANTIZE" for f in fed) and feeds and all(c == "QUANTIZE" for c in feeds):
            out.append(f"{op.op}#{op.index}")
    return out


def first_difference(model: Path, feeds: list[list[np.ndarray]], work: Path) -> str:
    """The first op (execution order) whose output differs between TFLM and LiteRT, e.g. "LEAKY_RELU#7 (float,
    between DEQUANTIZE and QUANTIZE): all zeros on TFLite Micro, not on LiteRT"; "" if none differs."""
    from ai_edge_litert.tools import flatbuffer_utils

    graph = read_tflite(model)
    tensors = graph.main.tensors
    watched = list(dict.fromkeys(o for op in graph.main.operators for o in op.outputs
                                 if o >= 0 and not tensors[o].is_constant))
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(model).read_bytes()))
    obj.subgraphs[0].outputs = np.asarray(watched, np.int32)
    debug = Path(work) / "every_op_output.tflite"
    debug.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(obj)))
    tflm, ref = _run_both(debug, feeds)
    dgraph = read_tflite(debug)
    order = {t: k for k, t in enumerate(dgraph.main.outputs)}
    verdicts = _judge(dgraph, [dgraph.main.tensors[t] for t in dgraph.main.outputs], tflm, ref)
    sandwiched = set(sandwiched_float_ops(graph))
    for op in graph.main.operators:
        for o in op.outputs:
            problem = verdicts[order[o]][1] if o in order else ""
            if problem:
                label = f"{op.op}#{op.index}"
                where = " (float, between DEQUANTIZE and QUANTIZE)" if label in sandwiched else ""
                return f"{label}{where} output '{tensors[o].name}': {problem}"
    return ""


def require_agreement(model: Path, feeds: list[list[np.ndarray]], work: Path, label: str) -> Agreement:
    """`check_agreement`, raising TflmMismatchError (exit 3) that names the first differing op on a failure."""
    result = check_agreement(model, feeds)
    if result.ok:
        return result
    culprit = first_difference(model, feeds, work)
    sandwiched = sandwiched_float_ops(read_tflite(model))
    if culprit:
        where = f"first at {culprit}"
    elif sandwiched:
        where = f"float op(s) between DEQUANTIZE and QUANTIZE: {', '.join(sandwiched)}"
    else:
        where = "no single op's output differs when every op's output is kept"
    fix = (f"quantize {', '.join(sandwiched)} (drop it from the ops kept float) or replace that op in the model"
           if sandwiched else "keep the op named here float, or quantize with another scheme")
    msg = (f"{label}: TFLite Micro disagrees with LiteRT on {result.samples} calibration samples "
           f"({result.problem}); {where}; not shipped: {fix}")
    raise TflmMismatchError(msg)
