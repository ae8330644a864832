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


@dataclass(frozen=True)
class Dataset:
    path: Path
    x: np.ndarray
    y: np.ndarray | None

    @property
    def count(self) -> int:
        return int(self.x.shape[0])


def load_dataset(path: Path, role: str) -> Dataset:
    """Read `path` for `role` ("calibration", "eval", "train"); raise DataError on bad content."""
    path = Path(path)
    if not path.is_file():
        msg = f"{role} data not found: {path}"
        raise DataError(msg)
    if path.stat().st_size == 0:
        msg = f"{role} data {path} is empty (0 bytes)"
        raise DataError(msg)
    y = None
    from edgeopt.data.npy_guard import check_npy_sizes

    check_npy_sizes(path, f"{role} data")
    try:
        if path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "x" not in z.files:
                    msg = f"{role} data {path} has no array 'x' (found: {', '.join(z.files) or 'none'}); save with np.savez(path, x=..., y=...)"
                    raise DataError(msg)
                x = z["x"]
                y = z["y"] if "y" in z.files else None
        else:
            msg = f"{role} data {path}: expected .npz (arrays x, y) or .npy"
            raise DataError(msg)
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:  # zlib: corrupt deflate data
        msg = f"{role} data {path} cannot be read ({str(exc)[:150]}); save it with numpy (no pickled objects)"
        raise DataError(msg) from None
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


def check_against_input(ds: Dataset, shape: tuple[int | None, ...], role: str) -> Dataset:
    """Check samples fit a model input of `shape` (batch dim first, None = any); returns float32 data."""
    want = tuple(shape[1:])
    got = tuple(ds.x.shape[1:])
    ok = len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got, strict=True))
    if not ok:
        pretty = "(N, " + ", ".join("?" if w is None else str(w) for w in want) + ")"
        msg = f"{role} data {ds.path} has shape {tuple(ds.x.shape)}; the model expects {pretty}"
        raise DataError(msg)
    if ds.x.dtype.kind not in "fiu" or ds.x.dtype.kind == "b":
        msg = f"{role} data {ds.path}: x has dtype {ds.x.dtype}; expected float samples"
        raise DataError(msg)
    return Dataset(ds.path, ds.x.astype(np.float32, copy=False), ds.y)


def sibling(model: Path, role: str) -> Path | None:
    """`NAME.calib.npz` / `NAME.eval.npz` / `NAME.train.npz` next to a model, if present."""
    key = {"calibration": "calib", "eval": "eval", "train": "train"}[role]
    stem = model.name[:-len(model.suffix)] if model.suffix else model.name
    cand = model.parent / f"{stem}.{key}.npz"
    return cand if cand.is_file() else None
