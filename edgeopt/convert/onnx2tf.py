"""ONNX -> float TFLite through onnx2tf, run as a separate program on a private copy, with a timeout.

onnx2tf rewrites its input .onnx in place (its op-naming step), so it only ever sees a copy in a private
temporary folder. It runs with:

    -tb flatbuffer_direct   its default back end, named so a new default cannot change what we run: writes the
                            .tflite without TensorFlow and moves NCHW to NHWC
    -n                      non-verbose (errors only): its progress bars would fill the log
    -roc                    *_op_coverage_report.json: per node, supported / lowered to a CUSTOM op /
                            unsupported with a reason code; read to name the op and node it failed on

It always writes *_tensor_correspondence_report.json, which maps each ONNX node output to the TFLite tensor
that carries it: the outputs' tensors are named from it. The layouts come from the shapes, for inputs and
outputs alike: identity or channels-last (anything else is refused as a broken correspondence); its report's
`assume_channel_last_layout` flag is no guide for graph outputs (measured: a lone Conv's output is NHWC in
the .tflite while the flag says False). A shape that fits both moves (e.g. 1x3x3x3) is reported as
ambiguous, never guessed.

    EDGEOPT_ONNX2TF_TIMEOUT=600   seconds allowed for one conversion

The child runs in its own process group, dies with edgeopt (PR_SET_PDEATHSIG) and is killed with its group on
a timeout, Ctrl-C or SIGTERM. Its failures become one line: the ONNX op and node it could not convert
(UnsupportedOpError, exit 2), or what happened to it (ConversionCrashed, exit 2).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgeopt.atomic import write_bytes_atomic
from edgeopt.convert.onnx2tf_tool import Onnx2tfTool, find_onnx2tf
from edgeopt.errors import (
    ConversionCrashed,
    ConversionError,
    InputError,
    ModelFileError,
    OutputError,
    UnsupportedOpError,
)
from edgeopt.tool_process import run_logged

DEFAULT_TIMEOUT = 600.0
TIMEOUT_ENV = "EDGEOPT_ONNX2TF_TIMEOUT"
MAX_TIMEOUT = 86400.0
FLAGS = ("-tb", "flatbuffer_direct", "-n", "-roc")
PRIVATE_NAME = "model"  # the private copy is model.onnx; onnx2tf names its outputs model_float32.tflite, ...


class Evidence(StrEnum):
    """How the layout move of a tensor is known."""

    SHAPES = "shapes"  # only one of identity / channels-last fits the shapes
    AMBIGUOUS = "ambiguous"  # both fit: the layout is unknown


@dataclass(frozen=True)
class TensorMatch:
    """One ONNX input or output and the .tflite tensor that carries it.

    `perm` moves an array from the ONNX layout to the TFLite one: tflite = onnx.transpose(perm)
    ((0, 2, 3, 1) for NCHW -> NHWC); None when ambiguous.
    """

    onnx_name: str
    tflite_name: str
    signature_key: str
    onnx_shape: tuple[int | None, ...]
    tflite_shape: tuple[int, ...]  # -1 for a dynamic dimension
    perm: tuple[int, ...] | None
    evidence: Evidence
    named_by_report: bool  # the tensor was found through onnx2tf's correspondence report (else by its own name)

    @property
    def channels_last(self) -> bool:
        return self.perm is not None and self.perm != tuple(range(len(self.perm)))


@dataclass(frozen=True)
class Onnx2tfConversion:
    tflite: Path  # the float32 .tflite, copied out of the private folder
    tool: str
    version: str
    seconds: float
    inputs: tuple[TensorMatch, ...]
    outputs: tuple[TensorMatch, ...]


def timeout_seconds() -> float:
    """EDGEOPT_ONNX2TF_TIMEOUT: a finite number of seconds in (0, one day]; anything else is exit 2."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        msg = f"{TIMEOUT_ENV}={raw[:40]!r} is not a time in seconds (0 < t <= {MAX_TIMEOUT:g}); unset it for {DEFAULT_TIMEOUT:g}"
        raise InputError(msg)
    return value


def convert_with_onnx2tf(model: Path, dest: Path, tool: Onnx2tfTool | None = None,
                         timeout: float | None = None, batch: int | None = None,
                         sizes: Mapping[str, tuple[int, ...]] | None = None) -> Onnx2tfConversion:
    """Convert `model` (.onnx) to a float32 .tflite written atomically at `dest`; the user's file is only read.
    `batch`: fix a dynamic batch dimension to this size (onnx2tf -b; TFLite Micro runs only static shapes).
    `sizes`: input name -> dims (--shape, checked against the model): its symbolic dimensions after the first
    are fixed to them in the private copy (the first, the batch, is `batch`'s)."""
    from edgeopt.input_files import regular_file
    from edgeopt.runtime.verify_onnx import load_onnx

    model, dest = Path(model), Path(dest)
    regular_file(model, "ONNX model", ModelFileError)
    with contextlib.suppress(OSError):
        if dest.exists() and dest.samefile(model):  # the user's model is never overwritten
            msg = f"the .tflite destination {dest} is the ONNX model itself; choose another path"
            raise OutputError(msg)
    proto = load_onnx(model)
    tool = tool or find_onnx2tf()
    limit = timeout if timeout is not None else timeout_seconds()
    with tempfile.TemporaryDirectory(prefix="edgeopt-onnx2tf-") as tmp:
        work = Path(tmp)
        private = _private_copy(model, proto, work)
        out = work / "out"
        start = time.perf_counter()
        code, log = _run(tool, _folded(private, batch, sizes or {}), out, limit, model,
                         () if batch is None else ("-b", str(int(batch))))
        seconds = round(time.perf_counter() - start, 3)
        coverage = _read_json(out / f"{PRIVATE_NAME}_op_coverage_report.json")
        if code != 0:
            raise _failure(model, code, log, coverage)
        _refuse_custom_ops(model, coverage)
        produced = out / f"{PRIVATE_NAME}_float32.tflite"
        if not produced.is_file():
            msg = f"{model}: onnx2tf exited 0 but wrote no float32 .tflite ({_tail(log)})"
            raise ConversionCrashed(msg)
        data = produced.read_bytes()
        report = _read_json(out / f"{PRIVATE_NAME}_tensor_correspondence_report.json")
        inputs, outputs = correspondence(proto, data, report, model)
    write_bytes_atomic(dest, data)
    return Onnx2tfConversion(dest, "onnx2tf", tool.version, seconds, inputs, outputs)


# --------------------------------------------------------------------------- the child


def _private_copy(model: Path, proto: Any, work: Path) -> Path:
    """model.onnx in `work`, with its external data files (names already confined by load_onnx)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    private = work / f"{PRIVATE_NAME}.onnx"
    shutil.copyfile(model, private)
    for t in _get_all_tensors(proto):
        if uses_external_data(t):
            location = next(e.value for e in t.external_data if e.key == "location")
            target = work / location
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(model.parent / location, target)
    return private


def _folded(private: Path, batch: int | None, sizes: Mapping[str, tuple[int, ...]]) -> Path:
    """The private copy after onnxruntime's basic graph optimizations (constant folding: what Shape, ConstantOfShape
    and friends compute becomes initializers), with a dynamic batch fixed to `batch` and the symbolic dimensions
    after it to `sizes` first, and a 2-D MatMul by a constant weight as a Gemm (_matmul_as_gemm). onnx2tf lowers a Conv
    whose weights are computed, or a Fill whose size is, to ops LiteRT/TFLite Micro cannot run; folded, they are
    constants. Basic optimizations write standard ONNX ops only. A model onnxruntime cannot optimize goes as it is."""
    import onnx
    import onnxruntime as ort

    try:
        proto = onnx.load(str(private))
        inits = {t.name for t in proto.graph.initializer}
        if proto.ir_version < 4:  # IR 3 lists every initializer as an input too: constants, as edgeopt reads them
            kept = [v for v in proto.graph.input if v.name not in inits]
            del proto.graph.input[:]
            proto.graph.input.extend(kept)
            proto.ir_version = 4
        for value in proto.graph.input:
            dims = value.type.tensor_type.shape.dim
            if value.name in inits or not dims:
                continue
            if batch is not None and not dims[0].HasField("dim_value"):
                dims[0].dim_value = int(batch)
            given = sizes.get(value.name, ())
            for d, size in zip(list(dims)[1:], given[1:], strict=False):
                if not d.HasField("dim_value"):
                    d.dim_value = int(size)
        fixed, folded = private.with_name("fixed.onnx"), private.with_name(f"{PRIVATE_NAME}-folded.onnx")
        onnx.save(proto, str(fixed))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(fixed), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnx2tf then gets the model as given, and says what it cannot convert
        return private
    if not folded.is_file():
        return private
    with contextlib.suppress(Exception):
        proto = onnx.load(str(folded))
        changed = _matmul_as_gemm(proto)
        if batch is not None:  # a microcontroller target: no op TFLite Micro lacks
            changed = _hard_activations_as_relu6(proto) or changed
        if changed:
            onnx.save(proto, str(folded))
    target = private.with_name(f"{PRIVATE_NAME}.onnx")
    folded.replace(target)  # onnx2tf names its outputs after the input file
    return target


def _matmul_as_gemm(proto: Any) -> bool:
    """MatMul(A, W) with A of rank 2 and W a constant 2-D weight, rewritten as Gemm(A, W) (the same product).
    onnx2tf lowers such a MatMul to BATCH_MATMUL unless a constant bias Add follows it, and a Gemm to
    FULLY_CONNECTED. ai-edge-quantizer gives BATCH_MATMUL's weight per-channel scales (on its last dimension)
    that LiteRT's BATCH_MATMUL kernel does not apply (measured on the digits MLP without biases: top-1 98.6% float,
    10.3% int8 per-channel, 98.3% per-tensor); FULLY_CONNECTED takes per-channel weights (98.3%). Gemm's bias is
    optional from opset 11; older models keep their MatMul (and per-tensor weights, edgeopt.quantize.registry)."""
    from onnx import helper, shape_inference

    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        return False
    graph = proto.graph
    weights = {t.name for t in graph.initializer if len(t.dims) == 2}
    inits = {t.name for t in graph.initializer}
    if not any((n.op_type == "MatMul" and n.domain in ("", "ai.onnx") and len(n.input) == 2 and n.input[1] in weights)
               or _computed_bias_gemm(n, weights, inits) for n in graph.node):
        return False
    inferred = shape_inference.infer_shapes(proto).graph
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in (*inferred.input, *inferred.value_info)
            if v.type.tensor_type.HasField("shape")}
    changed, nodes = False, []
    for i, node in enumerate(graph.node):
        if node.op_type == "MatMul" and node.domain in ("", "ai.onnx") and len(node.input) == 2 \
                and node.input[1] in weights and rank.get(node.input[0]) == 2:
            node.op_type = "Gemm"
            changed = True
        elif _computed_bias_gemm(node, weights, inits):  # onnxruntime fuses MatMul + Add of a computed tensor
            product = f"_edgeopt_gemm{i}"
            gemm = helper.make_node("Gemm", [node.input[0], node.input[1]], [product])
            if _attr(node, "transB", 0):
                gemm.attribute.append(helper.make_attribute("transB", 1))
            nodes.append(gemm)
            nodes.append(helper.make_node("Add", [product, node.input[2]], list(node.output), name=node.name))
            changed = True
            continue
        nodes.append(node)
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _attr(node: Any, name: str, default: float) -> float:
    return next((a.f if a.type == a.FLOAT else a.i for a in node.attribute if a.name == name), default)


def _computed_bias_gemm(node: Any, weights: set[str], inits: set[str]) -> bool:
    """Gemm(A, W, C) with W a constant 2-D weight and C computed (not a constant): onnx2tf lowers it to BATCH_MATMUL."""
    return (node.op_type == "Gemm" and node.domain in ("", "ai.onnx") and len(node.input) == 3 and bool(node.input[2])
            and node.input[1] in weights and node.input[2] not in inits and not _attr(node, "transA", 0)
            and _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0)


def _hard_activations_as_relu6(proto: Any) -> bool:
    """HardSigmoid(x) = clip(a*x + b, 0, 1) and HardSwish(x) = x * HardSigmoid(x) with a=1/6, b=1/2, rewritten
    as Clip(0, 6) (TFLite RELU6) times 1/6: onnx2tf lowers them to RELU_0_TO_1, which TFLite Micro lacks."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph, changed, nodes = proto.graph, False, []
    for i, node in enumerate(graph.node):
        if node.op_type not in ("HardSigmoid", "HardSwish") or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        attrs = {a.name: a.f for a in node.attribute}
        alpha, beta = (attrs.get("alpha", 0.2), attrs.get("beta", 0.5)) if node.op_type == "HardSigmoid" else \
            (1.0 / 6.0, 0.5)
        p = f"_edgeopt_hard{i}"
        consts = {f"{p}_a": 6.0 * alpha, f"{p}_b": 6.0 * beta, f"{p}_lo": 0.0, f"{p}_hi": 6.0, f"{p}_s": 1.0 / 6.0}
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items())
        x, y = node.input[0], node.output[0]
        nodes += [helper.make_node("Mul", [x, f"{p}_a"], [f"{p}_ax"]),
                  helper.make_node("Add", [f"{p}_ax", f"{p}_b"], [f"{p}_axb"]),
                  helper.make_node("Clip", [f"{p}_axb", f"{p}_lo", f"{p}_hi"], [f"{p}_relu6"])]
        if node.op_type == "HardSigmoid":
            nodes.append(helper.make_node("Mul", [f"{p}_relu6", f"{p}_s"], [y]))
        else:
            nodes += [helper.make_node("Mul", [f"{p}_relu6", f"{p}_s"], [f"{p}_gate"]),
                      helper.make_node("Mul", [x, f"{p}_gate"], [y])]
        changed = True
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _run(tool: Onnx2tfTool, private: Path, out: Path, limit: float, model: Path,
         extra: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run onnx2tf; (exit code, its output). Killed with its process group on timeout or interrupt."""
    cmd = [*tool.command, "-i", str(private), "-o", str(out), *FLAGS, *extra]
    log_path = private.parent / "onnx2tf.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)  # edgeopt's path must not leak into onnx2tf's own environment
    try:
        return run_logged(cmd, private.parent, env, log_path, limit)
    except subprocess.TimeoutExpired:
        msg = (f"{model}: onnx2tf did not finish within {limit:g} s and was stopped; {TIMEOUT_ENV} raises the "
               "limit for a large model")
        raise ConversionCrashed(msg) from None



# --------------------------------------------------------------------------- failures

_VALIDATION = re.compile(r"op=(?P<op>\S+) node=(?P<node>\S+) reason_code=(?P<reason>\S+) message=(?P<message>.*)")
FIX = "rewrite or remove that node (onnxsim folds constant inputs), or convert the model another way"


def _failure(model: Path, code: int, log: str, coverage: dict[str, Any] | None) -> Exception:
    nodes = (coverage or {}).get("unsupported_nodes") or []
    if nodes:
        n = nodes[0]
        return _unsupported(model, str(n.get("onnx_op")), str(n.get("node_name")), str(n.get("reason_code")),
                            str(n.get("message")), len(nodes))
    found = _VALIDATION.search(log)
    if found:
        return _unsupported(model, found["op"], found["node"], found["reason"], found["message"], 1)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = "ran out of memory or was killed" if -code == signal.SIGKILL else "crashed"
        return ConversionCrashed(f"{model}: onnx2tf {why} ({name}) while converting the model")
    return ConversionCrashed(f"{model}: onnx2tf failed (exit {code}): {_tail(log)}")


def _unsupported(model: Path, op: str, node: str, reason: str, message: str, count: int) -> UnsupportedOpError:
    more = f" (and {count - 1} more node(s))" if count > 1 else ""
    msg = (f"{model}: onnx2tf cannot convert ONNX op {op} (node '{node}'){more}: {message.strip()[:200]} "
           f"[{reason}]; {FIX}")
    return UnsupportedOpError(msg, (op,))


def _refuse_custom_ops(model: Path, coverage: dict[str, Any] | None) -> None:
    """onnx2tf retries an unsupported node as a CUSTOM op: a .tflite LiteRT cannot run is no conversion."""
    nodes = (coverage or {}).get("custom_lowered_nodes") or []
    if nodes:
        n = nodes[0]
        op, node = str(n.get("onnx_op")), str(n.get("node_name"))
        more = f" (and {len(nodes) - 1} more node(s))" if len(nodes) > 1 else ""
        msg = (f"{model}: onnx2tf cannot convert ONNX op {op} (node '{node}'){more} to a builtin TFLite op, only to "
               f"a CUSTOM op LiteRT cannot run ({str(n.get('message'))[:120]}); {FIX}")
        raise UnsupportedOpError(msg, (op,))


def _tail(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "it/s" not in ln]
    return lines[-1][:300] if lines else "no output"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------- correspondence


def correspondence(proto: Any, tflite: bytes, report: dict[str, Any] | None,
                   model: Path) -> tuple[tuple[TensorMatch, ...], tuple[TensorMatch, ...]]:
    """For each ONNX graph input and output, the .tflite tensor and layout permutation that carry it."""
    from edgeopt.analysis.tflite_graph import read_tflite

    graph = read_tflite(tflite)
    if any(op.custom for op in graph.operators):
        customs = sorted({op.op for op in graph.operators if op.custom})
        msg = f"{model}: onnx2tf wrote CUSTOM ops LiteRT cannot run ({', '.join(customs)}); {FIX}"
        raise UnsupportedOpError(msg, tuple(customs))
    in_keys, out_keys = _signature_keys(tflite)
    initializers = {i.name for i in proto.graph.initializer}
    onnx_inputs = [v for v in proto.graph.input if v.name not in initializers]
    records = {str(r.get("onnx_output_name")): r for r in (report or {}).get("records", [])
               if isinstance(r, dict) and r.get("is_graph_output")}
    by_name_in = {t.name: t for t in graph.inputs}
    by_name_out = {t.name: t for t in graph.outputs}
    inputs = []
    for v in onnx_inputs:
        t = by_name_in.get(v.name)
        if t is None:
            msg = (f"{model}: onnx2tf's .tflite has no input named '{v.name}' (its inputs: "
                   f"{', '.join(by_name_in) or 'none'}); the correspondence cannot be established")
            raise ConversionError(msg)
        inputs.append(_match(v.name, _onnx_shape(v), t, in_keys.get(t.index, t.name), False, model))
    outputs = []
    for v in proto.graph.output:
        record = records.get(v.name)
        name = str(record.get("resolved_tflite_tensor_name")) if record else v.name
        t = by_name_out.get(name)
        if t is None:
            msg = (f"{model}: onnx2tf's .tflite has no output for ONNX output '{v.name}' (its outputs: "
                   f"{', '.join(by_name_out) or 'none'}); the correspondence cannot be established")
            raise ConversionError(msg)
        outputs.append(_match(v.name, _onnx_shape(v), t, out_keys.get(t.index, t.name), record is not None, model))
    return tuple(inputs), tuple(outputs)


def channels_last_perm(rank: int) -> tuple[int, ...]:
    """NC... -> N...C: (0, 2, 3, 1) for rank 4; identity below rank 3."""
    return (0, *range(2, rank), 1) if rank >= 3 else tuple(range(rank))


def _match(name: str, onnx_shape: tuple[int | None, ...], t: Any, key: str, by_report: bool,
           model: Path) -> TensorMatch:
    tshape = tuple(t.shape_signature or t.shape)
    rank = len(tshape)
    identity, last = tuple(range(rank)), channels_last_perm(rank)
    known = len(onnx_shape) == rank

    def fits(perm: tuple[int, ...]) -> bool:
        if not known:
            return True
        return all(o is None or d < 0 or o == d for o, d in zip((onnx_shape[p] for p in perm), tshape, strict=True))

    candidates = {p for p in (identity, last) if fits(p)}
    if not candidates:
        msg = (f"{model}: ONNX tensor '{name}' {onnx_shape} and .tflite tensor '{t.name}' {tshape} differ by more "
               "than a channels-last move; the correspondence cannot be established")
        raise ConversionError(msg)
    if len(candidates) == 1:
        return TensorMatch(name, t.name, key, onnx_shape, tshape, candidates.pop(), Evidence.SHAPES, by_report)
    return TensorMatch(name, t.name, key, onnx_shape, tshape, None, Evidence.AMBIGUOUS, by_report)


def _onnx_shape(value: Any) -> tuple[int | None, ...]:
    tt = value.type.tensor_type
    if not tt.HasField("shape"):
        return ()
    return tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim)


def _signature_keys(tflite: bytes) -> tuple[dict[int, str], dict[int, str]]:
    """Tensor index -> key in the .tflite's single signature (empty when it has none or several)."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(tflite, 0)
    if m.SignatureDefsLength() != 1:
        return {}, {}
    sig = m.SignatureDefs(0)

    def keys(n: int, get: Any) -> dict[int, str]:
        out = {}
        for i in range(n):
            entry = get(i)
            out[int(entry.TensorIndex())] = (entry.Name() or b"").decode("utf-8", "replace")
        return out

    return keys(sig.InputsLength(), sig.Inputs), keys(sig.OutputsLength(), sig.Outputs)
