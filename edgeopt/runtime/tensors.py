"""Moving data across a quantized model boundary: float <-> int8/uint8/int16."""

from __future__ import annotations

import numpy as np

from edgeopt.runtime.base import TensorInfo


def to_model_input(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Quantize float data for a quantized input, or cast for a float one."""
    if info.quantized:
        q = np.round(x.astype(np.float64) / info.scale + info.zero_point)
        lim = np.iinfo(np.dtype(info.dtype))
        return np.clip(q, lim.min, lim.max).astype(info.dtype)
    return x.astype(info.dtype)


def from_model_output(y: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Dequantize a quantized output to float32; float outputs pass through."""
    if info.quantized:
        return ((y.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)
    return y.astype(np.float32)


def random_input(info: TensorInfo, rng: np.random.Generator, batch: int = 1) -> np.ndarray:
    """Seeded random data of the right shape and dtype (dynamic dims become `batch`/1)."""
    shape = tuple(batch if (i == 0 and d in (-1, 0)) else (1 if d in (-1, 0) else d) for i, d in enumerate(info.shape))
    dt = np.dtype(info.dtype)
    if dt.kind in "iu":
        lim = np.iinfo(dt)
        return rng.integers(lim.min, lim.max, size=shape, endpoint=True, dtype=dt)
    if dt.kind == "b":
        return rng.integers(0, 1, size=shape, endpoint=True).astype(bool)
    return rng.standard_normal(shape).astype(dt)
