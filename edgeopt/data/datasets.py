"""Load and check user data against a model's inputs.

`.npz` holds `x` (samples) and optionally `y` (integer labels or targets); `.npy` holds `x` only. A model with
several inputs takes one array per input name (`np.savez(path, image=..., extra=..., y=...)`), or, when the
arrays keep numpy's default names (`arr_0`, `arr_1`, ... or `x_0`, `input_0`, ...) and their count matches, one
per input in the model's order (an input named `y` takes the array `y`, and such a model has no labels).
An input with a fixed first dimension N takes N rows per sample (k x N rows, or an array of shape (k, N, ...));
a 0-d input takes a scalar or a 1-D array of them (see `data.tensors.feed_unit`). Files are read with
allow_pickle=False.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.data.npy_guard import ARCHIVE_ERRORS
from edgeopt.data.tensors import Batch, IOSpec, feed_unit
from edgeopt.errors import DataError
from edgeopt.input_files import regular_file

LABELS = "y"
_DEFAULT_NAME = re.compile(r"(?:arr|x|inputs?)_?(\d+)")


@dataclass(frozen=True)
class Dataset:
    path: Path
    x: np.ndarray  # the first (or only) input's samples
    y: np.ndarray | None
    inputs: tuple[tuple[str, np.ndarray], ...] = ()  # several inputs: (model input name, samples), model order

    @property
    def count(self) -> int:
        return int(self.x.shape[0])

    @property
    def batch(self) -> Batch:
        """What a runner or Keras is fed: the array, or (several inputs) arrays by input name."""
        return self.x if len(self.inputs) <= 1 else dict(self.inputs)


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


def load_dataset(path: Path, role: str, input_shape: tuple[int | None, ...] | None = None,
                 inputs: tuple[IOSpec, ...] | None = None) -> Dataset:
    """Read `path` for `role` ("calibration", "eval", "train"); raise DataError on bad content.

    With `input_shape` (the model's, batch first) or `inputs` (every model input) the array headers are checked
    against it before anything is inflated. Labels are read only for eval and train data.
    """
    if inputs is not None and len(inputs) > 1:
        return _load_several(check_data_path(path, role), role, inputs)
    if inputs is not None and input_shape is None:
        input_shape = inputs[0].shape
    path = check_data_path(path, role)
    from edgeopt.data.npy_guard import read_headers

    names = ("x",) if role == "calibration" else ("x", "y")
    headers = read_headers(path, f"{role} data", names)
    x_head = headers.get("x", headers.get(""))
    if input_shape is not None and x_head is not None:
        _check_shape(path, role, rows_shape(path, role, x_head.shape, input_shape), input_shape)
    y = None
    try:
        if path.suffix.lower() == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                key = _single_key(path, role, z.files, None if inputs is None else inputs[0].name)
                x = z[key]
                y = z["y"] if "y" in names and "y" in z.files else None
    except DataError:
        raise
    except ARCHIVE_ERRORS as exc:
        msg = f"{role} data {path} cannot be read ({str(exc)[:150]}); save it with numpy (no pickled objects)"
        raise DataError(msg) from None
    if not isinstance(x, np.ndarray):
        msg = f"{role} data {path}: 'x' is not an array; save with np.savez(path, x=..., y=...)"
        raise DataError(msg)
    if input_shape is not None:
        x = x.reshape(rows_shape(path, role, x.shape, input_shape))
    return _validate(Dataset(path, x, y), role)


def rows_shape(path: Path, role: str, got: tuple[int, ...], want: tuple[int | None, ...],
               name: str | None = None) -> tuple[int, ...]:
    """The shape of `got` as rows for an input of shape `want` (batch first): a scalar for a 0-d input becomes one
    row, and (k, N, ...) for a fixed first dimension N becomes k x N rows. DataError when the rows cannot split
    into whole samples."""
    got = tuple(int(g) for g in got)
    which = "x" if name is None else f"input '{name}'"
    unit = feed_unit(want)
    if unit == 0:
        if len(got) <= 1:
            return got or (1,)
        msg = (f"{role} data {path}: {which} is a scalar (0-d) in the model; give a scalar or a 1-D array of them "
               f"(one per sample), not shape {got}")
        raise DataError(msg)
    if want[0] is None:
        return got
    if len(got) == len(want) + 1 and all(w is None or w == g for w, g in zip(want, got[1:], strict=True)):
        return (got[0] * got[1], *got[2:])  # (k, N, ...): k samples of N rows
    if len(got) == len(want) and got and got[0] % unit:
        dims = ", ".join("?" if w is None else str(w) for w in want)
        msg = (f"{role} data {path}: {which} has a fixed first dimension {unit} (shape ({dims})), and the data's "
               f"{got[0]} rows are not a multiple of it; give k x {unit} rows, or an array of shape (k, {dims})")
        raise DataError(msg)
    return got


def _single_key(path: Path, role: str, files: list[str], input_name: str | None) -> str:
    """The array of a single-input model: `x`, else the input's name, else the one unlabelled array."""
    if "x" in files:
        return "x"
    if input_name is not None and input_name in files:
        return input_name
    rest = [f for f in files if f != LABELS]
    if len(rest) == 1 and _DEFAULT_NAME.fullmatch(rest[0]):
        return rest[0]
    msg = f"{role} data {path} has no array 'x' (found: {', '.join(files) or 'none'}); save with np.savez(path, x=..., y=...)"
    raise DataError(msg)


def match_arrays(path: Path, role: str, files: list[str], inputs: tuple[IOSpec, ...]) -> list[str]:
    """The .npz member for each model input: by input name; else, when every array keeps a default name
    (arr_0.., x_0.., input_0..) and the counts match, in order. DataError naming what matches nothing."""
    wanted = [s.name for s in inputs]
    arrays = [f for f in files if f != LABELS or LABELS in wanted]
    if all(n in arrays for n in wanted) and len(arrays) == len(wanted):
        return wanted
    if len(arrays) == len(wanted) and all(_DEFAULT_NAME.fullmatch(a) for a in arrays):
        return sorted(arrays, key=lambda a: int(_DEFAULT_NAME.fullmatch(a).group(1)))  # type: ignore[union-attr]
    stray = [a for a in arrays if a not in wanted]
    missing = [n for n in wanted if n not in arrays]
    example = ", ".join(f"{n}=..." for n in wanted)
    what = (f"array(s) {', '.join(stray)} match no model input" if stray else
            f"no array for input(s) {', '.join(missing)}")
    msg = (f"{role} data {path}: {what} (the model's inputs: {', '.join(wanted)}); save one array per input "
           f"name: np.savez(path, {example}{', y=...' if role != 'calibration' else ''})")
    raise DataError(msg)


def _load_several(path: Path, role: str, inputs: tuple[IOSpec, ...]) -> Dataset:
    names = ", ".join(s.name for s in inputs)
    if path.suffix.lower() == ".npy":
        msg = (f"{role} data {path}: a .npy holds one array and the model has {len(inputs)} inputs ({names}); "
               "save an .npz with one array per input name")
        raise DataError(msg)
    from edgeopt.data.npy_guard import read_headers

    headers = read_headers(path, f"{role} data", None)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = match_arrays(path, role, list(z.files), inputs)
            for key, spec in zip(keys, inputs, strict=True):
                if key in headers:
                    _check_shape(path, role, rows_shape(path, role, headers[key].shape, spec.shape, spec.name),
                                 spec.shape, spec.name)
            arrays = [z[k].reshape(rows_shape(path, role, z[k].shape, s.shape, s.name))
                      for k, s in zip(keys, inputs, strict=True)]
            labelled = role != "calibration" and LABELS in z.files and LABELS not in keys
            y = z[LABELS] if labelled else None
    except DataError:
        raise
    except ARCHIVE_ERRORS as exc:
        msg = f"{role} data {path} cannot be read ({str(exc)[:150]}); save it with numpy (no pickled objects)"
        raise DataError(msg) from None
    units = [max(feed_unit(s.shape), 1) for s in inputs]
    samples = [int(a.shape[0]) // u for a, u in zip(arrays, units, strict=True)]
    if len(set(samples)) != 1:
        got = ", ".join(f"{s.name}: {n}" + (f" ({n * u} rows of {u})" if u > 1 else "")
                        for s, n, u in zip(inputs, samples, units, strict=True))
        msg = f"{role} data {path}: the inputs hold different sample counts ({got}); give the same count for each"
        raise DataError(msg)
    for a in arrays:
        _validate(Dataset(path, a, None), role)
    ds = Dataset(path, arrays[0], y, tuple((s.name, a) for s, a in zip(inputs, arrays, strict=True)))
    return _validate(ds, role)


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
        msg = (f"{role} data {ds.path} has {bad} NaN or Inf value(s) in x; calibration and the accuracy metrics need "
               "finite numbers: clean the data (an attention mask can use -1e4 instead of -inf)")
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


def _check_shape(path: Path, role: str, got_shape: tuple[int, ...], shape: tuple[int | None, ...],
                 input_name: str | None = None) -> None:
    want = tuple(shape[1:])
    got = tuple(got_shape[1:])
    ok = len(got_shape) >= 1 and len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got, strict=True))
    if not ok:
        pretty = "(N, " + ", ".join("?" if w is None else str(w) for w in want) + ")"
        which = "" if input_name is None else f" for input '{input_name}'"
        msg = f"{role} data {path} has shape {tuple(got_shape)}{which}; the model expects {pretty}"
        raise DataError(msg)


def check_against_input(ds: Dataset, shape: tuple[int | None, ...], role: str,
                        inputs: tuple[IOSpec, ...] | None = None) -> Dataset:
    """Check samples fit a model input of `shape` (batch dim first, None = any); returns float32 data.

    With several `inputs`, every array is checked against its input; integer inputs (token ids) keep integers."""
    if inputs is not None and len(inputs) > 1 and ds.inputs:
        arrays = []
        for spec, (name, a) in zip(inputs, ds.inputs, strict=True):
            _check_shape(ds.path, role, tuple(a.shape), spec.shape, name)
            arrays.append(_as_input(ds.path, role, a, spec.dtype, name))
        return Dataset(ds.path, arrays[0], ds.y, tuple((s.name, a) for s, a in zip(inputs, arrays, strict=True)))
    _check_shape(ds.path, role, tuple(ds.x.shape), shape)
    return Dataset(ds.path, _as_input(ds.path, role, ds.x, "float32", None), ds.y)


def _as_input(path: Path, role: str, a: np.ndarray, dtype: str, name: str | None) -> np.ndarray:
    what = "x" if name is None else f"input '{name}'"
    if a.dtype.kind not in "fiu" or a.dtype.kind == "b":
        msg = f"{role} data {path}: {what} has dtype {a.dtype}; expected float samples"
        raise DataError(msg)
    if np.dtype(dtype).kind in "iu":
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            msg = f"{role} data {path}: {what} holds fractions; the model's input is {dtype} (give integers)"
            raise DataError(msg)
        return a.astype(dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        x = a.astype(np.float32, copy=False)
    if not np.isfinite(x).all():  # finite in float64 can overflow float32 (and crashed the calibrator)
        bad = int((~np.isfinite(x)).sum())
        msg = (
            f"{role} data {path}: {bad} value(s) of {what} overflow float32 (|x| > 3.4e38), the model's "
                        "input type; scale the data"
        )
        raise DataError(msg)
    return x


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


def load_samples(path: Path, role: str = "sample") -> Batch:
    """Samples for a converted model (`mcu check --data`): `x` (or a .npy), else every array but the labels `y`
    by name (a model with several inputs; matched to its inputs by name, else in order)."""
    path = check_data_path(path, role)
    if path.suffix.lower() == ".npy":
        return load_dataset(path, role).x
    from edgeopt.data.npy_guard import read_headers

    read_headers(path, f"{role} data", None)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = [f for f in z.files if f != LABELS]
            if "x" in files or len(files) <= 1:
                return load_dataset(path, role).x
            arrays = {f: z[f] for f in files}
    except ARCHIVE_ERRORS as exc:
        msg = f"{role} data {path} cannot be read ({str(exc)[:150]}); save it with numpy (no pickled objects)"
        raise DataError(msg) from None
    for a in arrays.values():
        _validate(Dataset(path, a, None), role)
    return arrays

