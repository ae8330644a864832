"""ai-edge-quantizer on a private copy of a float .tflite, in a child process: `python -m edgeopt.quantize.aeq_child JOB`.

JOB (JSON, written by edgeopt.quantize.tflite_file in a private temp folder) names the model copy, the output
path, the scheme and options, the signature, and an .npz of calibration samples (`s<sample>_<input>`, in the
order of `inputs`, the signature's input keys). The child writes the quantized model to `out` and one JSON
answer to `answer`: {"ok": true, "version", "seconds"} or {"ok": false, "class", "message"} (an edgeopt error's
class, or an internal one). A native crash or a hang is the parent's to report (it sees the exit status).

The recipe per scheme (ai-edge-quantizer's own names):
  int8     add_static_config(8-bit activations, 8-bit weights): its `static_wi8_ai8`
  int16x8  add_static_config(16-bit activations, 8-bit weights): its `static_wi8_ai16`
  dynamic  add_dynamic_config(8-bit weights): its `dynamic_wi8_afp32`
  float16  FLOAT_CASTING of weights to fp16 with explicit DEQUANTIZE (FC, conv, depthwise, transpose conv,
           embedding lookup: the ops its float casting supports)
Per-tensor weights when `per_channel` is false. Float model inputs / outputs: its virtual INPUT / OUTPUT ops
get `no_quantize` (a QUANTIZE / DEQUANTIZE at the boundary); otherwise they take the activation type.
Ops kept float: `no_quantize` on the op's exact scope (its output tensor names, as ai-edge-quantizer matches
them; a regex anchored at both ends, so no other op matches).

Never imports TensorFlow (checked before answering).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import errors
from edgeopt.errors import InputError, ModelFileError
from edgeopt.profiles.schema import CalibrationMethod, IOType, Scheme


def _recipe(q: Any, job: dict[str, Any]) -> None:
    from ai_edge_quantizer import qtyping

    op = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if job["per_channel"] else qtyping.QuantGranularity.TENSORWISE
    scheme = Scheme(job["scheme"])
    if scheme is Scheme.INT8:
        q.add_static_config(".*", op.ALL_SUPPORTED, 8, 8, granularity)
    elif scheme is Scheme.INT16X8:
        q.add_static_config(".*", op.ALL_SUPPORTED, 16, 8, granularity)
    elif scheme is Scheme.DYNAMIC:
        q.add_dynamic_config(".*", op.ALL_SUPPORTED, 8, granularity)
    elif scheme is Scheme.FLOAT16:
        fp16 = qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
            compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True)
        q.update_quantization_recipe(".*", op.ALL_SUPPORTED, fp16, algorithm_key=q_algorithms().FLOAT_CASTING)
    else:
        msg = f"scheme '{scheme}' is not an ai-edge-quantizer scheme; use int8, int16x8, dynamic or float16"
        raise InputError(msg)
    no_quantize = q_algorithms().NO_QUANTIZE
    if IOType(job["input_type"]) is IOType.FLOAT32:
        q.update_quantization_recipe(".*", op.INPUT, algorithm_key=no_quantize)
    if IOType(job["output_type"]) is IOType.FLOAT32:
        q.update_quantization_recipe(".*", op.OUTPUT, algorithm_key=no_quantize)


def q_algorithms() -> Any:
    from ai_edge_quantizer import quantizer

    return quantizer.AlgorithmName


def _keep_float(q: Any, model: Any, ops: list[int]) -> None:
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    main = model.subgraphs[0]
    for index in ops:
        scope = tfl_flatbuffer_utils.get_op_scope(main.operators[index], main.tensors)
        q.update_quantization_recipe("^" + re.escape(scope) + "$", qtyping.TFLOperationName.ALL_SUPPORTED,
                                     algorithm_key=q_algorithms().NO_QUANTIZE)


def _samples(path: str, keys: list[str]) -> list[dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        n = len({name.split("_")[0] for name in z.files})
        return [{key: z[f"s{s}_{i}"] for i, key in enumerate(keys)} for s in range(n)]


def _signature(model: bytes) -> str:
    """The model's one signature key (ai-edge-quantizer calibrates through signatures)."""
    from ai_edge_litert.interpreter import Interpreter

    sigs = list(Interpreter(model_content=model).get_signature_list())
    if len(sigs) != 1:
        msg = f"the model has {len(sigs)} signatures; ai-edge-quantizer needs exactly one (re-export it with one)"
        raise ModelFileError(msg)
    return str(sigs[0])


def quantize(job: dict[str, Any]) -> dict[str, Any]:
    from importlib import metadata

    from ai_edge_quantizer import quantizer

    from edgeopt.quantize.aeq_calibration import calibrate, percentile_ranges

    t0 = time.perf_counter()
    model = Path(job["model"]).read_bytes()
    q = quantizer.Quantizer(model)
    _recipe(q, job)
    _keep_float(q, q._float_model, list(job["keep_float"]))  # the parsed model: scopes as it matches them
    qsvs = None
    if q.need_calibration:
        samples = _samples(job["samples"], list(job["inputs"]))
        manager = q._recipe_manager  # the recipe just loaded decides which tensors are calibrated
        signature = _signature(model)
        qsvs = calibrate(model, signature, samples, manager)
        if CalibrationMethod(job["statistic"]) is CalibrationMethod.PERCENTILE:
            qsvs = percentile_ranges(model, signature, samples, qsvs, float(job["percentile"]))
    result = q.quantize(qsvs, enable_progress_report=False)
    if result.quantized_model is None:
        msg = "ai-edge-quantizer returned no model"
        raise RuntimeError(msg)
    Path(job["out"]).write_bytes(bytes(result.quantized_model))
    return {"version": metadata.version("ai-edge-quantizer"), "seconds": time.perf_counter() - t0}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    answer: dict[str, Any]
    try:
        answer = {"ok": True, **quantize(job)}
        if "tensorflow" in sys.modules:
            answer = {"ok": False, "class": "RuntimeError", "message": "ai-edge-quantizer imported TensorFlow"}
    except errors.EdgeoptError as exc:
        answer = {"ok": False, "class": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the stage
        answer = {"ok": False, "class": type(exc).__name__, "message": errors.cause_of(exc)}
    Path(job["answer"]).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
