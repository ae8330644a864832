"""Export a Keras 3 model to a SavedModel with a fixed input signature.

TFLiteConverter.from_keras_model and from_concrete_functions on an unfrozen
function break on Keras 3 (READ_VARIABLE during calibration). Exporting with
`model.export(format="tf_saved_model")` and converting the SavedModel works for
Sequential, functional and subclassed models alike.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeopt.data.tensors import IOSpec
from edgeopt.errors import ConversionError, InputError, first_line


def input_shape(model: Any) -> tuple[int | None, ...]:
    """The single input's shape (batch first); several inputs are refused clearly."""
    inputs = model.inputs if getattr(model, "inputs", None) else None
    if inputs is None:
        msg = "the model has no defined input shape; build it on a keras.Input first"
        raise InputError(msg)
    if len(inputs) != 1:
        names = ", ".join(getattr(t, "name", "?") for t in inputs)
        msg = f"the model has {len(inputs)} inputs ({names}); edgeopt supports single-input models for now"
        raise InputError(msg)
    return tuple(None if d is None else int(d) for d in inputs[0].shape)


def input_specs(model: Any) -> tuple[IOSpec, ...]:
    """Every input of a Keras model: name, shape (batch first), dtype."""
    inputs = model.inputs if getattr(model, "inputs", None) else None
    if inputs is None:
        msg = "the model has no defined input shape; build it on a keras.Input first"
        raise InputError(msg)
    out = []
    for i, t in enumerate(inputs):
        dtype = getattr(t, "dtype", "float32")
        name = signature_name(getattr(t, "name", "") or f"input_{i}") if len(inputs) > 1 else "input"
        out.append(IOSpec(name, tuple(None if d is None else int(d) for d in t.shape),
                          str(getattr(dtype, "name", dtype))))
    return tuple(out)


def output_specs(model: Any) -> tuple[IOSpec, ...]:
    """Every output of a Keras model, by its Keras output name, in Keras order."""
    outputs = list(getattr(model, "outputs", None) or [])
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(outputs):
        names = [f"output_{i}" for i in range(len(outputs))]
    return tuple(IOSpec(str(n), tuple(None if d is None else int(d) for d in getattr(t, "shape", (None,))))
                 for n, t in zip(names, outputs, strict=True))


def signature_name(name: str) -> str:
    """A Keras tensor name as a SavedModel/TFLite signature key and an ONNX input name."""
    import re

    name = re.sub(r"[^A-Za-z0-9_]", "_", name.split(":")[0])
    return name if name and not name[0].isdigit() else f"input_{name}"


def output_width(model: Any) -> int | None:
    """Values per sample of the first output (the class count of a classifier); None if a dimension is dynamic."""
    outputs = getattr(model, "outputs", None) or []
    dims = tuple(getattr(outputs[0], "shape", (None, None)))[1:] if outputs else (None,)
    if any(d is None for d in dims):
        return None
    return math.prod(int(d) for d in dims)


def export_saved_model(model: Any, directory: Path, batch: int | None = 1) -> Path:
    """Write `model` as a SavedModel with input batch `batch` (None = dynamic); signature inputs are named as
    `input_specs` names them, outputs `output_0`, `output_1`, ... in Keras order."""
    import tensorflow as tf

    specs = [tf.TensorSpec((batch, *s.shape[1:]), tf.as_dtype(s.dtype), name=s.name) for s in input_specs(model)]
    # one input: its spec; several: one list of specs, as the functional model takes them (signature keys = names)
    signature = specs if len(specs) == 1 else [specs]
    try:
        from edgeopt.runtime.quiet import native_quiet

        with native_quiet(), contextlib.redirect_stdout(io.StringIO()):
            model.export(str(directory), format="tf_saved_model", input_signature=signature, verbose=False)
    except Exception as exc:  # noqa: BLE001 - TF raises many types
        msg = f"SavedModel export failed: {type(exc).__name__}: {first_line(exc)}"
        raise ConversionError(msg) from None
    return directory


@contextlib.contextmanager
def temporary_saved_model(model: Any, batch: int | None = 1) -> Iterator[Path]:
    """`model` exported to a SavedModel in a temporary folder, removed on exit; a SavedModel folder is used as is."""
    if isinstance(model, str | Path):
        yield Path(model)
        return
    with tempfile.TemporaryDirectory(prefix="edgeopt-sm-") as tmp:
        yield export_saved_model(model, Path(tmp) / "sm", batch)
