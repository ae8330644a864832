"""Benchmark inputs: seeded random of the right dtype, or arrays from a .npz/.npy file checked against the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeopt.data.npy_guard import ARCHIVE_ERRORS
from edgeopt.errors import DataError
from edgeopt.runtime.base import TensorInfo
from edgeopt.runtime.shapes import Shapes, data_sample, order_arrays, resolve_inputs
from edgeopt.runtime.tensors import INT_RANGE, random_input

InputData = dict[str, np.ndarray] | list[np.ndarray]


def load_input_file(path: Path) -> dict[str, np.ndarray]:
    """Arrays from a .npz (one per model input, by name or in order) or a single .npy. No pickle."""
    from edgeopt.data.npy_guard import check_npy_sizes
    from edgeopt.input_files import regular_file

    path = Path(path)
    regular_file(path, "input file", DataError)

    check_npy_sizes(path, "input file")
    try:
        if path.suffix.lower() == ".npy":
            return {"": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ARCHIVE_ERRORS as exc:
        msg = f"{path}: not a readable .npz/.npy file without pickled objects ({exc})"
        raise DataError(msg) from None
    if not arrays:
        msg = f"{path} holds no arrays"
        raise DataError(msg)
    return arrays


def make_feeds(inputs: tuple[TensorInfo, ...], seed: int, data: InputData | None = None,
               shapes: Shapes | None = None, int_range: tuple[int, int] | None = None) -> list[np.ndarray]:
    """One sample per model input: a batch of `data` (edgeopt.runtime.shapes.data_sample), or seeded random data of the right dtype,
    shaped by `shapes` (edgeopt.runtime.shapes) where the model's dimensions are symbolic."""
    if data is None:
        rng = np.random.default_rng(seed)
        return [random_input(info, rng, int_range=int_range or INT_RANGE) for info in resolve_inputs(inputs, shapes or {})]
    return [data_sample(info, a) for info, a in zip(inputs, order_arrays(inputs, data), strict=True)]
