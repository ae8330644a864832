"""Quantize a float .tflite without its source model or TensorFlow, through Google's ai-edge-quantizer.

`quantize_tflite_file(src, dst, scheme, calibration, options)`:

1. checks the options against the scheme and reads `src` in pure Python (a float TFLite flatbuffer; ops to keep
   float resolved by op index or output tensor name);
2. copies it into a private temp folder and opens the copy in LiteRT (verify + probe child: edgeopt.runtime);
3. runs ai-edge-quantizer on the copy in a child process with a timeout (edgeopt.quantize.aeq_child: the
   recipe per scheme; edgeopt.quantize.aeq_calibration: global min/max or percentile ranges, not its moving
   average);
4. accepts the result only after it ran in LiteRT on the calibration samples (finite outputs), has the asked
   I/O types and keeps float what was asked, and, with `options.mcu`, after host TFLite Micro agreed with
   LiteRT on them (edgeopt.mcu.agreement: within 1 LSB, never all zeros where LiteRT is not; exit 3 naming
   the first op that differs);
5. writes `dst` atomically (edgeopt.atomic) and returns a frozen `TfliteFileResult`.

The user's file is only read. TensorFlow is never imported, here or in the child.

Where ai-edge-quantizer (0.10.0) falls short and what is done instead:
- calibration statistic: its default is a moving average of per-sample min/max (see aeq_calibration): we pass
  `calibrator.Calibrator` the global min/max update, and compute percentiles ourselves;
- uint8 model I/O is not one of its recipes: refused (int8 or float32);
- it leaves ops it cannot quantize float without saying so: those are listed in the result's notes (and an
  MCU model with such an op sandwiched between DEQUANTIZE and QUANTIZE is named if TFLM then disagrees);
- it picks the op scope by the op's output tensor names; keep-float uses the op's exact scope.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import errors
from edgeopt.analysis.tflite_graph import TfliteGraph, read_tflite
from edgeopt.data.tensors import Batch
from edgeopt.errors import (
    ConversionCrashed,
    ConversionError,
    InputError,
    ModelFileError,
    OutputError,
    RuntimeUnavailableError,
)
from edgeopt.profiles.schema import CalibrationMethod, IOType, Scheme

QUANTIZER = "ai-edge-quantizer"
CHILD_MODULE = "edgeopt.quantize.aeq_child"
CALIBRATED = (Scheme.INT8, Scheme.INT16X8)
ACCEPT_SAMPLES = 32  # calibration samples run through the result in LiteRT (and TFLM) before it is accepted


@dataclass(frozen=True)
class TfliteFileOptions:
    per_channel: bool = True  # per-channel weights (else per-tensor)
    statistic: CalibrationMethod = CalibrationMethod.MINMAX  # global min/max or percentile (entropy: ONNX only)
    percentile: float = 99.99  # with statistic = percentile: the range keeps values between 100 - p and p
    input_type: IOType = IOType.FLOAT32  # int8 (scheme int8), int16 (int16x8) or float32 with QUANTIZE inside
    output_type: IOType = IOType.FLOAT32
    keep_float: tuple[int | str, ...] = ()  # ops left float: operator index or an output tensor name
    mcu: bool = False  # also run on host TFLite Micro and compare with LiteRT
    timeout_s: float = 600.0  # for ai-edge-quantizer's child

    def __post_init__(self) -> None:
        """InputError naming an option ai-edge-quantizer (or this module) cannot do, whatever the scheme."""
        if self.statistic is CalibrationMethod.ENTROPY:
            msg = "calibration statistic 'entropy' is ONNX-only; for a .tflite use 'minmax' or 'percentile'"
            raise InputError(msg)
        if not 50.0 < self.percentile <= 100.0:
            msg = f"percentile must be in (50, 100] (got {self.percentile:g}); 99.99 keeps all but the rarest values"
            raise InputError(msg)
        if not self.timeout_s > 0:
            msg = f"timeout must be positive (got {self.timeout_s:g} s)"
            raise InputError(msg)
        for key in ("input_type", "output_type"):
            if getattr(self, key) is IOType.UINT8:
                msg = f"{key} = 'uint8' is not offered by {QUANTIZER}; use 'int8' or 'float32'"
                raise InputError(msg)

    def check(self, scheme: Scheme) -> None:
        """InputError naming the option that does not fit `scheme`."""
        if scheme is Scheme.NONE:
            msg = "scheme 'none' leaves the model float: nothing to quantize; choose int8, int16x8, dynamic or float16"
            raise InputError(msg)
        for key in ("input_type", "output_type"):
            io = getattr(self, key)
            if (io is IOType.INT8 and scheme is not Scheme.INT8) or (io is IOType.INT16 and scheme is not Scheme.INT16X8):
                need = "int8" if io is IOType.INT8 else "int16x8"
                msg = f"{key} = '{io}' needs scheme = '{need}' (got '{scheme}')"
                raise InputError(msg)


@dataclass(frozen=True)
class TfliteFileResult:
    path: Path
    scheme: Scheme
    quantizer: str
    quantizer_version: str
    seconds: float  # ai-edge-quantizer's calibration + quantization, in its child
    total_seconds: float  # the whole call: checks, child start, quantization, LiteRT (and TFLM) acceptance
    bytes_in: int
    bytes_out: int
    kept_float: tuple[str, ...]  # ops kept float as asked, labelled from the float model: "CONV_2D#5"
    notes: tuple[str, ...]


def quantize_tflite_file(src: Path, dst: Path, scheme: Scheme, calibration: Batch | None = None,
                         options: TfliteFileOptions | None = None) -> TfliteFileResult:
    """Quantize float .tflite `src` into `dst` under `scheme`; see the module docstring for every step."""
    t0 = time.perf_counter()
    options = options or TfliteFileOptions()
    options.check(scheme)
    _require_quantizer()
    src, dst = Path(src), Path(dst)
    graph = _float_graph(src)
    keep = _resolve_keep(graph, options.keep_float)
    if scheme in CALIBRATED and calibration is None:
        msg = f"scheme '{scheme}' needs calibration samples (an .npz with one array per input, or one array)"
        raise InputError(msg)
    _check_destination(dst, src)
    work = Path(tempfile.mkdtemp(prefix="edgeopt-aeq-"))
    try:
        return _quantize(src, dst, scheme, calibration, options, graph, keep, work, t0)
    except errors.EdgeoptError as exc:  # a runtime's message names our private copy: say what it is instead
        exc.args = tuple(str(a).replace(str(work / "quantized.tflite"), f"the {scheme} model ({QUANTIZER}'s output)")
                         .replace(str(work / "float.tflite"), str(src)).replace(f"{work}/", "") for a in exc.args)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _quantize(src: Path, dst: Path, scheme: Scheme, calibration: Batch | None, options: TfliteFileOptions,
              graph: TfliteGraph, keep: tuple[int, ...], work: Path, t0: float) -> TfliteFileResult:
    """Steps 2 to 5 in the private folder `work`."""
    from edgeopt.atomic import write_bytes_atomic
    from edgeopt.mcu.agreement import require_agreement
    from edgeopt.mcu.compare import make_feeds
    from edgeopt.runtime import open_runner

    copy = work / "float.tflite"
    shutil.copyfile(src, copy)
    runner = open_runner(copy)
    count = _count(calibration) if calibration is not None else ACCEPT_SAMPLES
    feeds = make_feeds(runner.inputs, calibration, count, keys=runner.input_keys)
    answer = _run_child(work, copy, scheme, options, keep, runner.input_keys, feeds)
    out = work / "quantized.tflite"
    qgraph = read_tflite(out)
    notes = _check_result(qgraph, graph, scheme, options, keep)
    accept = _accept_litert(out, calibration)
    if options.mcu:
        agreement = require_agreement(out, accept, work, f"{src.name} quantized {scheme}")
        notes += (f"TFLite Micro agrees with LiteRT on {agreement.samples} samples "
                  f"(largest difference {agreement.max_abs_diff:g})",)
    data = out.read_bytes()
    write_bytes_atomic(dst, data)
    return TfliteFileResult(
        path=dst, scheme=scheme, quantizer=QUANTIZER, quantizer_version=str(answer["version"]),
        seconds=float(answer["seconds"]), total_seconds=time.perf_counter() - t0, bytes_in=graph.size_bytes,
        bytes_out=len(data), kept_float=tuple(f"{graph.main.operators[i].op}#{i}" for i in keep), notes=notes)


def weights_per_channel(src: Path, per_channel: bool) -> tuple[bool, tuple[str, ...]]:
    """Whether int8 weights of float .tflite `src` can be per-channel, and the note when they cannot.

    ai-edge-quantizer gives BATCH_MATMUL's constant operand per-channel scales LiteRT's kernel does not honour
    (measured: digits MLP without biases top-1 98.6% float -> 10.3% per-channel, 98.3% per-tensor). A 2-D MatMul by
    a constant reaches onnx2tf as a Gemm (FULLY_CONNECTED, where per-channel is right:
    convert.onnx2tf._matmul_as_gemm); what is left here is a MatMul of rank > 2 or of two computed tensors."""
    if per_channel and any(op.op == "BATCH_MATMUL" for op in read_tflite(src).main.operators):
        return False, ("per-channel weights off: the model has BATCH_MATMUL (onnx2tf's MatMul of 3-D or computed "
                       "operands), whose per-channel int8 weights LiteRT does not run correctly; weights are per-tensor",)
    return per_channel, ()


def _require_quantizer() -> None:
    import importlib.util

    if importlib.util.find_spec("ai_edge_quantizer") is None:
        msg = f"{QUANTIZER} is not installed; install it with: pip install 'edgeopt[tflite-quant]'"
        raise RuntimeUnavailableError(msg)


def _float_graph(src: Path) -> TfliteGraph:
    from edgeopt.load.formats import ModelFormat, detect_format

    fmt = detect_format(src)
    if fmt is not ModelFormat.TFLITE:
        msg = f"{src}: a {fmt} model; this quantizer takes a float .tflite"
        raise ModelFileError(msg)
    graph = read_tflite(src)
    quantized = [t.name for t in graph.main.tensors if t.quantized or t.dtype in ("int8", "uint8", "int16")]
    if quantized:
        msg = f"{src} is already quantized (tensor '{quantized[0]}' is integer); give the float .tflite"
        raise ModelFileError(msg)
    if len(graph.subgraphs) != 1:
        msg = f"{src} has {len(graph.subgraphs)} subgraphs (control flow); this quantizer takes single-graph models"
        raise ModelFileError(msg)
    return graph


def _resolve_keep(graph: TfliteGraph, keep: tuple[int | str, ...]) -> tuple[int, ...]:
    ops = graph.main.operators
    out: list[int] = []
    for item in keep:
        if isinstance(item, bool) or not isinstance(item, int | str):
            msg = f"keep-float entry {item!r} is neither an op index nor a tensor name"
            raise InputError(msg)
        if isinstance(item, int):
            if not 0 <= item < len(ops):
                msg = f"keep-float op #{item} does not exist: the model has ops 0 to {len(ops) - 1}"
                raise InputError(msg)
            out.append(item)
            continue
        found = [op.index for op in ops if any(graph.main.tensors[o].name == item for o in op.outputs if o >= 0)]
        if not found:
            msg = f"keep-float tensor '{item}' is no op's output; name an op's output tensor or give its index"
            raise InputError(msg)
        out.append(found[0])
    return tuple(dict.fromkeys(out))


def _check_destination(dst: Path, src: Path) -> None:
    from edgeopt.atomic import refuse_overwriting

    refuse_overwriting(dst, {"float model": src})
    if not dst.parent.is_dir():
        msg = f"output folder {dst.parent} does not exist; create it or choose another output path"
        raise OutputError(msg)
    if dst.is_dir():
        msg = f"output {dst} is a folder; give a .tflite file path"
        raise OutputError(msg)


def _count(batch: Batch) -> int:
    from edgeopt.data.tensors import batch_count

    return batch_count(batch)


def _run_child(work: Path, model: Path, scheme: Scheme, options: TfliteFileOptions, keep: tuple[int, ...],
               keys: tuple[str, ...], feeds: list[list[np.ndarray]]) -> dict[str, Any]:
    """ai-edge-quantizer in its child, on the private copy; its answer, or the edgeopt error it stands for."""
    samples = work / "samples.npz"
    np.savez(samples, **{f"s{s}_{i}": x for s, sample in enumerate(feeds) for i, x in enumerate(sample)})  # type: ignore[arg-type]
    job = {"model": str(model), "out": str(work / "quantized.tflite"), "answer": str(work / "answer.json"),
           "scheme": str(scheme), "per_channel": options.per_channel, "statistic": str(options.statistic),
           "percentile": options.percentile, "input_type": str(options.input_type),
           "output_type": str(options.output_type), "keep_float": list(keep), "inputs": list(keys),
           "samples": str(samples)}
    (work / "job.json").write_text(json.dumps(job))
    stage = f"{QUANTIZER} ({scheme})"
    with (work / "child.log").open("wb") as log:
        try:
            proc = subprocess.run([sys.executable, "-m", CHILD_MODULE, str(work / "job.json")], stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=log, cwd=work, timeout=options.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            msg = (f"{stage} did not finish within {options.timeout_s:g} s; give fewer calibration samples or a "
                   "longer timeout")
            raise ConversionCrashed(msg) from None
    answer_path = work / "answer.json"
    if proc.returncode != 0 or not answer_path.is_file():
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        msg = f"{stage} died ({how}) on the model; it cannot quantize this graph, try another scheme"
        raise ConversionCrashed(msg)
    answer = json.loads(answer_path.read_text())
    if not answer.get("ok"):
        name, message = str(answer.get("class", "")), str(answer.get("message", ""))
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, errors.EdgeoptError) and cls is not errors.UnsupportedOpError:
            raise cls(message)
        msg = f"{stage} failed: {name}: {message}"
        raise ConversionError(msg)
    return dict(answer)


def _check_result(q: TfliteGraph, f: TfliteGraph, scheme: Scheme, options: TfliteFileOptions,
                  keep: tuple[int, ...]) -> tuple[str, ...]:
    """The quantized graph has the asked I/O types and keeps float what was asked; notes on what else is float."""
    for key, tensors, before in (("input_type", q.inputs, f.inputs), ("output_type", q.outputs, f.outputs)):
        want = str(getattr(options, key))
        if scheme not in CALIBRATED:
            want = "float32"
        got = [t.dtype for t in tensors]
        # a tensor that was not float (an int64 sample rate, token ids) keeps its type: nothing quantizes it
        wants = [want if b.dtype == "float32" else b.dtype for b in before]
        if len(got) != len(wants) or any(d != w for d, w in zip(got, wants, strict=False)):
            msg = f"{QUANTIZER} made {key} {', '.join(got)}, not {', '.join(wants)} as asked"
            raise ConversionError(msg)
    float_out = {q.main.tensors[o].name for op in q.main.operators if op.op not in ("DEQUANTIZE", "QUANTIZE")
                 for o in op.outputs if o >= 0 and q.main.tensors[o].dtype == "float32"}
    for i in keep:
        names = [f.main.tensors[o].name for o in f.main.operators[i].outputs if o >= 0]
        if scheme in CALIBRATED and not any(n in float_out for n in names):
            msg = f"{QUANTIZER} did not keep {f.main.operators[i].op}#{i} float as asked"
            raise ConversionError(msg)
    notes: list[str] = []
    if scheme in CALIBRATED:
        kept = {f.main.tensors[o].name for i in keep for o in f.main.operators[i].outputs if o >= 0}
        left = [f"{op.op}#{op.index}" for op in f.main.operators
                if any(f.main.tensors[o].name in float_out - kept for o in op.outputs if o >= 0)]
        if left:
            notes.append(f"{QUANTIZER} left {len(left)} op(s) float it cannot quantize: {', '.join(left)}")
    return tuple(notes)


def _accept_litert(model: Path, calibration: Batch | None) -> list[list[np.ndarray]]:
    """Run the result in LiteRT (verified, probed in a child first) on the calibration samples (seeded random
    ones without): every output finite. Returns the feeds, in the quantized model's input types."""
    from edgeopt.mcu.compare import make_feeds
    from edgeopt.runtime import open_runner
    from edgeopt.runtime.tensors import from_model_output

    runner = open_runner(model)
    feeds = make_feeds(runner.inputs, calibration, ACCEPT_SAMPLES, keys=runner.input_keys)
    for sample in feeds:
        for info, y in zip(runner.outputs, runner.run(sample), strict=True):
            if not np.all(np.isfinite(from_model_output(y, info))):
                msg = f"the {QUANTIZER} model gives non-finite output '{info.name}' in LiteRT; not shipped"
                raise ConversionError(msg)
    return feeds
