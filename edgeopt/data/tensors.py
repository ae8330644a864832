"""A model's named inputs and outputs, and a batch of samples for one or several inputs.

A `Batch` is the samples of a single-input model as one array, or of a model with several inputs as a dict from
input name to array, in the model's input order (the form Keras `predict`, onnxruntime feeds, an ONNX
`CalibrationDataReader` and a TFLite signature-keyed representative dataset all take).
"""

from __future__ import annotations

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


def batch_count(batch: Batch) -> int:
    first = batch if isinstance(batch, np.ndarray) else next(iter(batch.values()))
    return int(first.shape[0])


def batch_head(batch: Batch, n: int) -> Batch:
    """The first `n` samples of every input."""
    if isinstance(batch, np.ndarray):
        return batch[:n]
    return {k: v[:n] for k, v in batch.items()}


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
