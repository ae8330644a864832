"""Load and check user data against a model's input.

`.npz` holds `x` (samples) and optionally `y` (integer labels or targets);
`.npy` holds `x` only. Files are read with allow_pickle=False.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.errors import DataError
from edgeopt.input_files import regular_file


@dataclass(frozen=True)
class Dataset:
    path: Path
    x: np.ndarray
    y: np.ndarray | None

    @property
    def count(self) -> int:
        return int(self.x.shape[0])


SUFFIXES = (".npz", ".npy")


def check_data_path(path: Path, role: str) -> Path:
    """`path` if it is a regular .npz/.npy file; DataError otherwise. Nothing is opened."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        msg = f"{role} data {path}: expected .npz (arrays x, y) or .npy"
        raise DataError(msg)
    st = regular_file(path, f"{role} data", DataError)
    if st.st_size == 0:
        msg = f"{role} data {path} is empty (0 bytes)"
        raise DataError(msg)
    return path


def load_dataset(path: Path, role: str, input_shape: tuple[int | None, ...] | None = None) -> Dataset:
    """Read `path` for `role` ("calibration", "eval", "train"); raise DataError on bad content.

    With `input_shape` (the model's, batch first) the array headers are checked against it before
    anything is inflated. Labels are read only for eval and train data.
    """
    path = check_data_path(path, role)
    from edgeopt.data.npy_guard import read_headers

    names = ("x",) if role == "calibration" else ("x", "y")
    headers = read_headers(path, f"{role} data", names)
    x_head = headers.get("x", headers.get(""))
    if input_shape is not None and x_head is not None:
        _check_shape(path, role, x_head.shape, input_shape)
    y = None
    try:
        if path.suffix.lower() == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if "x" not in z.files:
                    msg = f"{role} data {path} has no array 'x' (found: {', '.join(z.files) or 'none'}); save with np.savez(path, x=..., y=...)"
                    raise DataError(msg)
                x = z["x"]
                y = z["y"] if "y" in names and "y" in z.files else None
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:  # zlib: corrupt deflate data
        msg = f"{role} data {path} cannot be read ({str(exc)[:150]}); save it with numpy (no pickled objects)"
        raise DataError(msg) from None
    if not isinstance(x, np.ndarray):
        msg = f"{role} data {path}: 'x' is not an array; save with np.savez(path, x=..., y=...)"
        raise DataError(msg)
    return _validate(Dataset(path, x, y), role)


def _validate(ds: Dataset, role: str) -> Dataset:
    x, y = ds.x, ds.y
    if x.dtype.kind not in "fiub":
        msg = f"{role} data {ds.path}: x has dtype {x.dtype}; expected numbers"
        raise DataError(msg)
    if x.ndim == 0 or x.shape[0] == 0:
        msg = f"{role} data {ds.path} has no samples"
        raise DataError(msg)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        msg = f"{role} data {ds.path} has {bad} NaN or Inf value(s) in x; clean the data"
        raise DataError(msg)
    if y is not None:
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            n = 0 if y.ndim == 0 else y.shape[0]
            msg = f"{role} data {ds.path}: {n} labels for {x.shape[0]} samples; counts must match"
            raise DataError(msg)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            msg = f"{role} data {ds.path} has NaN or Inf labels"
            raise DataError(msg)
    return ds


def _check_shape(path: Path, role: str, got_shape: tuple[int, ...], shape: tuple[int | None, ...]) -> None:
    want = tuple(shape[1:])
    got = tuple(got_shape[1:])
    ok = len(got_shape) >= 1 and len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got, strict=True))
    if not ok:
        pretty = "(N, " + ", ".join("?" if w is None else str(w) for w in want) + ")"
        msg = f"{role} data {path} has shape {tuple(got_shape)}; the model expects {pretty}"
        raise DataError(msg)


def check_against_input(ds: Dataset, shape: tuple[int | None, ...], role: str) -> Dataset:
    """Check samples fit a model input of `shape` (batch dim first, None = any); returns float32 data."""
    _check_shape(ds.path, role, tuple(ds.x.shape), shape)
    if ds.x.dtype.kind not in "fiu" or ds.x.dtype.kind == "b":
        msg = f"{role} data {ds.path}: x has dtype {ds.x.dtype}; expected float samples"
        raise DataError(msg)
    with np.errstate(over="ignore", invalid="ignore"):
        x = ds.x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():  # finite in float64 can overflow float32 (and crashed the calibrator)
        bad = int((~np.isfinite(x)).sum())
        msg = (
            f"{role} data {ds.path}: {bad} value(s) of x overflow float32 (|x| > 3.4e38), the model's "
                        "input type; scale the data"
        )
        raise DataError(msg)
    return Dataset(ds.path, x, ds.y)


def sibling(model: Path, role: str) -> Path | None:
    """`NAME.calib.npz` / `NAME.eval.npz` / `NAME.train.npz` next to a model, if present."""
    key = {"calibration": "calib", "eval": "eval", "train": "train"}[role]
    stem = model.name[:-len(model.suffix)] if model.suffix else model.name
    cand = model.parent / f"{stem}.{key}.npz"
    return cand if cand.is_file() else None


def check_labels(ds: Dataset, classes: int | None, role: str) -> Dataset:
    """Labels, when present, must be class indices: a 1-D integer array with values in [0, classes).

    `classes` is the model's output width (a single output counts as 2 classes: a binary classifier);
    None when the width is dynamic (then only the type, rank and sign are checked). Anything else would
    score as 0% for every artifact and the float model alike, and look like "no accuracy lost".
    """
    y = ds.y
    if y is None:
        return ds
    if y.ndim != 1:
        hint = "y.argmax(1) for one-hot labels" if y.ndim == 2 and y.shape[1] > 1 else "y.reshape(-1)"
        msg = (
            f"{role} data {ds.path}: labels y have shape {tuple(y.shape)}; give one class index per "
                        f"sample, a 1-D integer array ({hint})"
        )
        raise DataError(msg)
    if y.dtype.kind not in "iu":
        msg = (
            f"{role} data {ds.path}: labels y are {y.dtype}, not integers; save class indices "
                        "(y.astype(np.int64))"
        )
        raise DataError(msg)
    n_classes = None if classes is None else max(int(classes), 2)
    if y.size:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0:
            msg = f"{role} data {ds.path}: label {lo} is negative; labels are class indices from 0"
            raise DataError(msg)
        if n_classes is not None and hi >= n_classes:
            msg = (
                f"{role} data {ds.path}: label {hi} is out of range for the model's {n_classes} "
                            f"outputs; labels must be in [0, {n_classes})"
            )
            raise DataError(msg)
    return ds
