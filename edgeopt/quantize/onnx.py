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

from edgeopt.errors import ConversionError, InputError
from edgeopt.profiles.schema import CalibrationMethod, QuantFormat, Scheme


@dataclass(frozen=True)
class OnnxRecipe:
    scheme: Scheme
    per_channel: bool = True
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    quant_format: QuantFormat = QuantFormat.QDQ
    calibration: np.ndarray | None = None
    nodes_to_exclude: tuple[str, ...] = ()


class _Reader:
    """CalibrationDataReader over a float32 array, one sample at a time, fixed order."""

    def __init__(self, name: str, x: np.ndarray) -> None:
        self._name, self._x, self._i = name, x, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._x.shape[0]:
            return None
        s = self._x[self._i : self._i + 1].astype(np.float32)
        self._i += 1
        return {self._name: s}

    def rewind(self) -> None:
        self._i = 0


def quantize_onnx(src: Path, dst: Path, recipe: OnnxRecipe) -> Path:
    """Write the quantized model for `recipe` to `dst`."""
    import onnx

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    try:
        if recipe.scheme is Scheme.NONE:
            dst.write_bytes(src.read_bytes())
        elif recipe.scheme is Scheme.FLOAT16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
            onnx.save(_topological(model), str(dst))
        elif recipe.scheme is Scheme.DYNAMIC:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with _quiet():
                quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=recipe.per_channel,
                                 nodes_to_exclude=list(recipe.nodes_to_exclude))
        elif recipe.scheme is Scheme.INT8:
            _static(src, dst, recipe)
        else:
            raise InputError(f"scheme '{recipe.scheme}' is not available for ONNX; use none, float16, dynamic or int8")
    except (InputError, ConversionError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"ONNX quantization ({recipe.scheme}) failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from None
    return dst


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _static(src: Path, dst: Path, recipe: OnnxRecipe) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod as CM
    from onnxruntime.quantization import QuantFormat as QF
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if recipe.calibration is None:
        raise InputError("int8 needs calibration data; give --calib data.npz (or --random-calibration)")
    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
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
                str(pre), str(dst), _Reader(name, recipe.calibration),
                quant_format=QF.QDQ if recipe.quant_format is QuantFormat.QDQ else QF.QOperator,
                per_channel=recipe.per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=method, nodes_to_exclude=list(recipe.nodes_to_exclude),
                extra_options={"CalibTensorRangeSymmetric": False},
            )


def _topological(model: Any) -> Any:
    """Order nodes so every input is produced before use (the float16 pass appends its input casts last).

    Kahn's algorithm, taking ready nodes in their original order.
    """
    import heapq

    g = model.graph
    nodes = list(g.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    waiting = [0] * len(nodes)
    consumers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        deps = {producer[x] for x in n.input if x in producer and producer[x] != i}
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
