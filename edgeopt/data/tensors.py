"""A model's named inputs and outputs, and a batch of samples for one or several inputs.

A `Batch` is the samples of a single-input model as one array, or of a model with several inputs as a dict from
input name to array, in the model's input order (the form Keras `predict`, onnxruntime feeds, an ONNX
`CalibrationDataReader` and a TFLite signature-keyed representative dataset all take).

Arrays are rows, batch first. One *sample* is what one run of the model takes: for an input with a dynamic first
dimension one row, for a fixed first dimension N (an ONNX model exported at batch 3, a Gemm's 5x4 `b`) N rows,
and for a 0-d input one element of a 1-D array (its "unit" is 0). `feed_unit` gives that per input shape.

A fixed first dimension is read as part of what one run takes, never as a batch of samples: every run is fed
the whole N-row block, so k samples of such an input are k x N rows. A recurrent state ([2, 1, 128] in
silero-vad, beside its audio [N, 512] and its 0-d sample rate) is one sample per run: 4 runs take 8 rows of
state, 4 rows of audio and 4 sample rates. `sample_count` counts one input's samples that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Batch = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class IOSpec:
    name: str
    shape: tuple[int | None, ...]  # batch first, None = dynamic
    dtype: str = "float32"  # numpy name

    @property
    def pretty(self) -> str:
        return "(N, " + ", ".join("?" if d is None else str(d) for d in self.shape[1:]) + ")"


Units = tuple[int, ...]  # rows per sample of each input, in the batch's input order (see feed_unit)


def feed_unit(shape: Sequence[int | None]) -> int:
    """Rows of the data that one run takes for an input of `shape` (None or -1 = dynamic): the fixed first
    dimension, 1 when it is dynamic, 0 for a 0-d input (each element of a 1-D array is one scalar feed)."""
    if not shape:
        return 0
    d = shape[0]
    return int(d) if d is not None and int(d) > 0 else 1


def units_of(shapes: Sequence[Sequence[int | None]]) -> Units:
    return tuple(feed_unit(s) for s in shapes)


def sample_count(a: np.ndarray, unit: int) -> int:
    """Samples in one input's array: its rows over `unit` (whole blocks of a fixed first dimension), its elements
    for a 0-d input (unit 0: a scalar is one sample, a 1-D array one per element)."""
    rows = int(a.shape[0]) if a.ndim else 1
    return rows // unit if unit > 1 else rows


def batch_count(batch: Batch, units: Units | None = None) -> int:
    """Samples in `batch`: those of the first input over its unit (rows when `units` is None)."""
    first = batch if isinstance(batch, np.ndarray) else next(iter(batch.values()))
    return sample_count(first, units[0] if units else 1)


def batch_head(batch: Batch, n: int, units: Units | None = None) -> Batch:
    """The first `n` samples of every input."""
    if isinstance(batch, np.ndarray):
        return batch[: n * max(units[0], 1) if units else n]
    us = units or (1,) * len(batch)
    return {k: v[: n * max(u, 1)] for (k, v), u in zip(batch.items(), us, strict=True)}


def take_feed(a: np.ndarray, unit: int, i: int, count: int = 1) -> np.ndarray:
    """Samples i .. i+count-1 of one input's rows, as the model takes them (a 0-d element for unit 0)."""
    if unit == 0:
        return np.asarray(a[i]) if a.ndim else a
    return a[i * unit: (i + count) * unit]


def batch_arrays(batch: Batch) -> list[np.ndarray]:
    """The arrays in input order."""
    return [batch] if isinstance(batch, np.ndarray) else list(batch.values())


def batch_first(batch: Batch) -> np.ndarray:
    """The first (or only) input's samples."""
    return batch if isinstance(batch, np.ndarray) else next(iter(batch.values()))


def sample_shapes(batch: Batch) -> str:
    """One sample's shape per input, batch 1: "1x8x8x1" or "image=1x8x8x1, extra=1x4"."""
    def one(a: np.ndarray) -> str:
        return "x".join(str(int(d)) for d in (1, *a.shape[1:]))

    if isinstance(batch, np.ndarray):
        return one(batch)
    return ", ".join(f"{k}={one(v)}" for k, v in batch.items())
