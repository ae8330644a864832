"""Benchmark inputs: seeded random of the right dtype, or arrays from a .npz/.npy file checked against the model."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgeopt.errors import DataError
from edgeopt.runtime.base import TensorInfo
from edgeopt.runtime.shapes import Shapes, order_arrays, resolve_inputs
from edgeopt.runtime.tensors import INT_RANGE, feed_dtype, random_input

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
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # zlib: corrupt deflate data
        msg = f"{path}: not a readable .npz/.npy file without pickled objects ({exc})"
        raise DataError(msg) from None
    if not arrays:
        msg = f"{path} holds no arrays"
        raise DataError(msg)
    return arrays


def _check(info: TensorInfo, arr: np.ndarray) -> np.ndarray:
    want = info.shape
    if arr.ndim == len(want) - 1:
        arr = arr[None]
    if arr.ndim != len(want) or any(w > 0 and w != a for w, a in zip(want[1:], arr.shape[1:], strict=True)):
        msg = f"input '{info.name}' expects shape {list(want)} (batch first), the data has {list(arr.shape)}"
        raise DataError(msg)
    x = arr[:1]
    if x.shape[0] == 0:
        msg = f"input '{info.name}': the data has no samples"
        raise DataError(msg)
    have, need = np.dtype(x.dtype), feed_dtype(info)
    if need.kind == "O":
        if have.kind not in "OUS":
            msg = f"input '{info.name}' is a string tensor but the data is {have.name}; give str arrays"
            raise DataError(msg)
        return np.ascontiguousarray(x.astype(object))
    if have != need:
        if need.kind in "iu" and have.kind == "f":
            msg = f"input '{info.name}' is {need.name} (quantized) but the data is {have.name}; give {need.name} data"
            raise DataError(msg)
        if need.kind == "f" and have.kind in "fiu":
            x = x.astype(need)
        elif need.kind in "iu" and have.kind in "iu":
            lim = np.iinfo(need)
            if x.size and (x.min() < lim.min or x.max() > lim.max):
                msg = f"input '{info.name}' is {need.name} but the data ({have.name}) has values outside [{lim.min}, {lim.max}]"
                raise DataError(msg)
            x = x.astype(need)
        else:
            msg = f"input '{info.name}' is {need.name} but the data is {have.name}"
            raise DataError(msg)
    return np.ascontiguousarray(x)


def make_feeds(inputs: tuple[TensorInfo, ...], seed: int, data: InputData | None = None,
               shapes: Shapes | None = None, int_range: tuple[int, int] | None = None) -> list[np.ndarray]:
    """One sample per model input: the first row of `data`, or seeded random data of the right dtype,
    shaped by `shapes` (edgeopt.runtime.shapes) where the model's dimensions are symbolic."""
    if data is None:
        rng = np.random.default_rng(seed)
        return [random_input(info, rng, int_range=int_range or INT_RANGE) for info in resolve_inputs(inputs, shapes or {})]
    return [_check(info, np.asarray(a)) for info, a in zip(inputs, order_arrays(inputs, data), strict=True)]
