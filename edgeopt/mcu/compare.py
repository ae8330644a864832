"""TFLite Micro vs LiteRT on the same int8 model and samples: bit-exact, or where they differ."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.data.tensors import Batch
from edgeopt.errors import DataError
from edgeopt.runtime.base import RunnerOptions, TensorInfo
from edgeopt.runtime.tensors import random_input, to_model_input


@dataclass(frozen=True)
class DiffLocation:
    sample: int
    output: int
    element: tuple[int, ...]  # index inside that output tensor


@dataclass(frozen=True)
class Comparison:
    samples: int
    bit_exact: bool
    max_abs_diff: float  # in the output's own units (int8 steps for a quantized output)
    where: DiffLocation | None  # first place where the largest difference occurs
    mismatched_elements: int


def litert_outputs(model: Path, feeds: list[list[np.ndarray]], reference_kernels: bool = False,
                   ) -> tuple[tuple[TensorInfo, ...], list[list[np.ndarray]]]:
    """Outputs from LiteRT on one thread without XNNPACK: its optimized builtin kernels, or its reference ones."""
    from edgeopt.runtime import open_runner

    runner = open_runner(model, RunnerOptions(threads=1, xnnpack=False, reference_kernels=reference_kernels))
    return runner.outputs, [runner.run(sample) for sample in feeds]


def compare(tflm: tuple[tuple[np.ndarray, ...], ...], ref: list[list[np.ndarray]]) -> Comparison:
    worst, where, mismatched = 0.0, None, 0
    for s, (a_sample, b_sample) in enumerate(zip(tflm, ref, strict=True)):
        for o, (a, b) in enumerate(zip(a_sample, b_sample, strict=True)):
            a = np.asarray(a).reshape(np.asarray(b).shape)
            diff = np.abs(a.astype(np.float64) - np.asarray(b).astype(np.float64))
            mismatched += int(np.count_nonzero(diff))
            if diff.size and float(diff.max()) > worst:
                worst = float(diff.max())
                where = DiffLocation(s, o, tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)))
    return Comparison(samples=len(ref), bit_exact=mismatched == 0, max_abs_diff=worst, where=where,
                      mismatched_elements=mismatched)


def make_feeds(inputs: tuple[TensorInfo, ...], x: Batch | None, count: int, seed: int = 0,
               keys: tuple[str, ...] = ()) -> list[list[np.ndarray]]:
    """Samples as model inputs: float data is quantized with each input's scale; None -> seeded random.

    A model with several inputs takes arrays by input name (`keys`: the runner's signature keys)."""
    if x is None:
        rng = np.random.default_rng(seed)
        return [[random_input(info, rng) for info in inputs] for _ in range(count)]
    if isinstance(x, np.ndarray):
        if len(inputs) != 1:
            msg = (f"the model has {len(inputs)} inputs; sample data (one array x) fits single-input models only: "
                   "give an .npz with one array per input name")
            raise DataError(msg)
        arrays = [x]
    else:
        names = keys or tuple(i.name for i in inputs)
        missing = [k for k in names if k not in x]
        if missing and len(x) == len(inputs):
            arrays = list(x.values())
        elif missing:
            msg = f"sample data has no array for input(s) {', '.join(missing)} (arrays: {', '.join(x)})"
            raise DataError(msg)
        else:
            arrays = [x[k] for k in names]
    n = min(count, *(int(a.shape[0]) for a in arrays))
    return [[_one(a, i, info) for a, info in zip(arrays, inputs, strict=True)] for i in range(n)]


def _one(x: np.ndarray, i: int, info: TensorInfo) -> np.ndarray:
    want = tuple(d if d > 0 else 1 for d in info.shape)
    sample = x[i:i + 1]
    if sample.size != int(np.prod(want)):
        msg = f"sample {i} has shape {list(x.shape[1:])}; the model input {info.name} wants {list(want[1:])}"
        raise DataError(msg)
    sample = sample.reshape(want)
    if sample.dtype.kind == "f":
        return to_model_input(sample, info)
    if np.dtype(sample.dtype) == np.dtype(info.dtype):
        return sample
    msg = f"sample data is {sample.dtype}; the model input is {info.dtype} (give float data or {info.dtype})"
    raise DataError(msg)
