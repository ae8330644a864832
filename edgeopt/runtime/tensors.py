"""Moving data across a quantized model boundary: float <-> int8/uint8/int16."""

from __future__ import annotations

import numpy as np

from edgeopt.errors import InputError
from edgeopt.runtime.base import TensorInfo

# Random values for integer inputs that are not quantized (indices, sizes, token ids, a sample rate, a flag):
# a small range every such input can take; the whole int64 range makes Gather, Range or Tile fail or allocate GBs.
INT_RANGE = (0, 3)  # inclusive
STRING = "string"  # TensorInfo.dtype of a string tensor (fed as a numpy object array of str)


def feed_dtype(info: TensorInfo) -> np.dtype:
    """The numpy dtype `info` is fed with; InputError naming the type when numpy cannot feed it."""
    if info.dtype == STRING:
        return np.dtype(object)
    try:
        dt = np.dtype(info.dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biufO":
        msg = (
            f"input '{info.name}' has type {info.dtype}, which cannot be fed from numpy; "
            "export the model with float32/float16 or integer inputs"
        )
        raise InputError(msg)
    return dt


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


def random_input(info: TensorInfo, rng: np.random.Generator, batch: int = 1,
                 int_range: tuple[int, int] = INT_RANGE) -> np.ndarray:
    """Seeded random data of the right shape and dtype (dynamic dims become `batch`/1).

    Quantized integer inputs span their type (they encode real values); other integers come from `int_range`
    (inclusive); strings are short decimal numbers.
    """
    shape = tuple(batch if (i == 0 and d in (-1, 0)) else (1 if d in (-1, 0) else d) for i, d in enumerate(info.shape))
    dt = feed_dtype(info)
    if dt.kind in "iu":
        lim = np.iinfo(dt)
        lo, hi = (lim.min, lim.max) if info.quantized else (max(int_range[0], lim.min), min(int_range[1], lim.max))
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=dt)
    if dt.kind == "O":
        return np.array([str(v) for v in rng.integers(0, 100, size=int(np.prod(shape)))], dtype=object).reshape(shape)
    if dt.kind == "b":
        return rng.integers(0, 1, size=shape, endpoint=True).astype(bool)
    return rng.standard_normal(shape).astype(dt)
