"""Per-layer quantization sensitivity, the shared part: the row type, the ranking, SNR, input checks.

One module per backend computes the rows: edgeopt.quantize.sensitivity.tflite (the TFLite
QuantizationDebugger) and edgeopt.quantize.sensitivity.onnx (onnxruntime's qdq_loss_debug).
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import overload

import numpy as np

from edgeopt.data.tensors import Batch, batch_count
from edgeopt.errors import DataError

SNR_CAP_DB = 200.0


@dataclass(frozen=True)
class LayerSensitivity:
    name: str  # the op's output tensor (TFLite) or node name (ONNX): what partial quantization excludes
    layer: str  # readable label: Keras layer name(s) found in `name`, else `name`
    op_type: str  # CONV_2D, FULLY_CONNECTED... / Conv, MatMul...
    rmse: float  # root-mean-square error of the op output, float vs quantized
    snr_db: float  # signal-to-quantization-noise ratio of the op output (lower = more sensitive)
    macs_share: float  # fraction of the model's MACs in this op (0..1)


def rank(rows: tuple[LayerSensitivity, ...]) -> tuple[LayerSensitivity, ...]:
    """Most sensitive first (lowest SNR; ties by larger MAC share)."""
    return tuple(sorted(rows, key=lambda r: (r.snr_db, -r.macs_share, r.name)))


def snr_db(signal_power: float, noise_power: float) -> float:
    if noise_power <= 0.0:
        return SNR_CAP_DB
    if signal_power <= 0.0:
        return -SNR_CAP_DB
    return float(max(-SNR_CAP_DB, min(SNR_CAP_DB, 10.0 * math.log10(signal_power / noise_power))))


@overload
def check_calibration(calib_x: np.ndarray | None) -> np.ndarray: ...
@overload
def check_calibration(calib_x: Batch | None) -> Batch: ...
def check_calibration(calib_x: Batch | None) -> Batch:
    """Float inputs as float32 (integer inputs of a model with several keep their dtype); DataError when empty."""
    if calib_x is None or batch_count(calib_x) == 0:
        msg = "sensitivity needs calibration data; give --calib data.npz (array x, a few hundred samples)"
        raise DataError(msg)
    if isinstance(calib_x, dict):
        return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in calib_x.items()}
    return np.asarray(calib_x, dtype=np.float32)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield

