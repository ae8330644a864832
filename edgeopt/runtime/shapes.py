"""Concrete input shapes for models with symbolic dimensions: from --shape NAME=1x3x640x640 or from data arrays.

    shapes = parse_shape_specs(["image=1x3x640x640"])        # {"image": (1, 3, 640, 640)}
    infos = resolve_inputs(runner.inputs, shapes)            # TensorInfo with those dims
    describe_shapes(shapes)                                  # "image=1x3x640x640"

A spec may name an input or, for a single-input model, leave the name out ("1x3x640x640"). A name that is not an
input, a rank that differs, or a value that contradicts a fixed dimension is bad input (InputError, exit 2).
Dimensions still symbolic after resolution are fed as 1 (batch) or 1, and callers say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from edgeopt.errors import DataError, InputError
from edgeopt.runtime.base import TensorInfo

Shapes = Mapping[str, tuple[int, ...]]  # input name ("" = the only input) -> dims


def parse_shape_specs(specs: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """`NAME=1x3x640x640` (or `1x3x640x640` for the only input) -> {NAME: (1, 3, 640, 640)}."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, _, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not shape or any(d < 1 for d in shape):
            msg = f"--shape '{spec}': write NAME=1x3x640x640 (positive sizes joined by 'x')"
            raise InputError(msg)
        if name in out:
            msg = f"--shape gives input '{name or '(the input)'}' twice"
            raise InputError(msg)
        out[name] = shape
    return out


def resolve_inputs(inputs: tuple[TensorInfo, ...], shapes: Shapes) -> tuple[TensorInfo, ...]:
    """`inputs` with the dims of `shapes`; InputError for unknown names or contradictions."""
    if not shapes:
        return inputs
    by_name = dict(shapes)
    if "" in by_name:
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            msg = (
                f"--shape without a name fits single-input models; this one has {len(inputs)} ({names}): "
                "write NAME=..."
            )
            raise InputError(msg)
        by_name[inputs[0].name] = by_name.pop("")
    unknown = [n for n in by_name if n not in {i.name for i in inputs}]
    if unknown:
        names = ", ".join(i.name for i in inputs)
        msg = f"--shape names input '{unknown[0]}', which the model does not have (inputs: {names})"
        raise InputError(msg)
    out = []
    for info in inputs:
        shape = by_name.get(info.name)
        if shape is None:
            out.append(info)
            continue
        if info.shape and len(shape) != len(info.shape):
            msg = (
                f"input '{info.name}' has {len(info.shape)} dimensions {_fmt(info.shape)}; "
                f"the shape given has {len(shape)} ({_fmt(shape)})"
            )
            raise InputError(msg)
        for i, (fixed, given) in enumerate(zip(info.shape, shape, strict=False)):
            if fixed > 0 and fixed != given:
                msg = (
                    f"input '{info.name}' has a fixed dimension {i} of {fixed} ({_fmt(info.shape)}); "
                    f"the shape given says {given}"
                )
                raise InputError(msg)
        out.append(replace(info, shape=shape))
    return tuple(out)


def plain_name(tensor_name: str) -> str:
    """The SavedModel input name of a converted TFLite tensor: `serving_default_image:0` -> `image`."""
    return tensor_name.split(":")[0].removeprefix("serving_default_")


def order_arrays(inputs: tuple[TensorInfo, ...], data: Mapping[str, Any] | list[Any]) -> list[Any]:
    """The arrays of `data` in input order: by input name when every input is named, else in file order."""
    if isinstance(data, Mapping):
        if all(i.name in data for i in inputs):
            return [data[i.name] for i in inputs]
        if all(plain_name(i.name) in data for i in inputs):  # a .tflite from a SavedModel: serving_default_NAME:0
            return [data[plain_name(i.name)] for i in inputs]
        # Keras names npz keys like "x"; take arrays in file order then, ignoring label arrays ("y").
        arrays = [v for k, v in data.items() if k not in ("y", "labels")] if len(data) > len(inputs) else list(data.values())
    else:
        arrays = list(data)
    if len(arrays) != len(inputs):
        names = ", ".join(i.name for i in inputs)
        msg = (
            f"model has {len(inputs)} input(s) ({names}) but the data has {len(arrays)} array(s); "
            "name the .npz arrays after the inputs"
        )
        raise DataError(msg)
    return arrays


def data_sample(info: TensorInfo, arr: Any) -> np.ndarray:
    """What the benchmark feeds `info` from the user's array: one batch, in the input's dtype.

    A fixed first dimension N takes the first N rows (a 1-D input of length 5 is fed whole); a dynamic one takes the
    first row; an array one rank short gets a batch axis of 1; a 0-d input takes a scalar, or the first element of a
    1-D array (one scalar per sample); a rank-unknown input is fed as given.
    DataError, one line, when the data contradicts a fixed dimension or cannot be cast to the input's dtype.
    """
    from edgeopt.runtime.tensors import feed_dtype

    x = np.asarray(arr)
    want = info.shape
    if want:
        if x.ndim == len(want) - 1:
            x = x[None]
        if x.ndim != len(want) or any(w > 0 and w != a for w, a in zip(want[1:], x.shape[1:], strict=True)):
            msg = f"input '{info.name}' expects shape {_fmt(want)} (batch first), the data has {list(x.shape)}"
            raise DataError(msg)
        rows = want[0] if want[0] >= 0 else 1  # a fixed 0 is an empty tensor; only -1 is dynamic
        if x.shape[0] < rows or (x.shape[0] == 0 and rows):
            have = "no samples" if x.shape[0] == 0 else f"{x.shape[0]} row(s)"
            msg = f"input '{info.name}' expects shape {_fmt(want)}; the data has {have} ({list(x.shape)})"
            raise DataError(msg)
        x = x[:rows]
    elif x.ndim == 1 and info.shape == ():  # a 0-d input given as rows (one scalar per sample): the first
        x = x[0]
    return np.require(_cast(info, x, feed_dtype(info)), requirements="C")  # ascontiguousarray makes 0-d 1-d


def _cast(info: TensorInfo, x: np.ndarray, need: np.dtype) -> np.ndarray:
    have = np.dtype(x.dtype)
    if need.kind == "O":
        if have.kind not in "OUS":
            msg = f"input '{info.name}' is a string tensor but the data is {have.name}; give str arrays"
            raise DataError(msg)
        return x.astype(object)
    if have == need:
        return x
    if need.kind in "iu" and have.kind == "f" and info.quantized:
        msg = f"input '{info.name}' is {need.name} (quantized) but the data is {have.name}; give {need.name} data"
        raise DataError(msg)
    if need.kind in "fc" and have.kind in "biuf":
        return x.astype(need)
    if need.kind in "iu" and have.kind in "biu":
        lim = np.iinfo(need)
        if x.size and (int(x.min()) < lim.min or int(x.max()) > lim.max):
            msg = (
                f"input '{info.name}' is {need.name} but the data ({have.name}) has values outside "
                f"[{lim.min}, {lim.max}]"
            )
            raise DataError(msg)
        return x.astype(need)
    if need.kind == "b" and have.kind in "biu" and (not x.size or bool(np.isin(x, (0, 1)).all())):
        return x.astype(need)
    msg = f"input '{info.name}' is {need.name} but the data is {have.name}; give {need.name} data"
    raise DataError(msg)


def shaped_like(inputs: tuple[TensorInfo, ...], data: Mapping[str, Any] | list[Any]) -> tuple[TensorInfo, ...]:
    """`inputs` with the shape of the sample of `data` the benchmark feeds (data_sample); DataError as there."""
    return tuple(replace(info, shape=data_sample(info, arr).shape)
                 for info, arr in zip(inputs, order_arrays(inputs, data), strict=True))


def symbolic(inputs: tuple[TensorInfo, ...]) -> list[str]:
    """Names of inputs with a dynamic dimension beyond the batch."""
    return [i.name for i in inputs if any(d <= 0 for d in i.shape[1:])]


def describe_shapes(inputs: tuple[TensorInfo, ...]) -> str:
    """`a=1x3x64x64, b=1` (dynamic dims shown as 1, the size they are fed with)."""
    return ", ".join(f"{i.name}={'x'.join(str(d if d > 0 else 1) for d in i.shape) or 'scalar'}" for i in inputs)


def shape_hint(inputs: Iterable[tuple[str, Iterable[int]]]) -> str:
    """The `--shape` options to give for these inputs, in the model's own names and rank: fixed dims as they are,
    a symbolic batch as 1, every other symbolic dim `?` (its size is the user's to give), e.g.
    `--shape images=1x3x?x?` or `--shape waveform=1x?`."""
    specs = []
    for name, shape in inputs:
        dims = ["1" if k == 0 and d <= 0 else "?" if d <= 0 else str(d) for k, d in enumerate(shape)]
        specs.append(f"--shape {name}={'x'.join(dims) or 'scalar'}")
    more = " (each ? its real size)" if any("?" in s for s in specs) else ""
    return " ".join(specs) + more


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d <= 0 else str(d) for d in shape) + "]"
