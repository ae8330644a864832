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


def output_width(model: Any) -> int | None:
    """Values per sample of the first output (the class count of a classifier); None if a dimension is dynamic."""
    outputs = getattr(model, "outputs", None) or []
    dims = tuple(getattr(outputs[0], "shape", (None, None)))[1:] if outputs else (None,)
    if any(d is None for d in dims):
        return None
    return math.prod(int(d) for d in dims)


def export_saved_model(model: Any, directory: Path, batch: int | None = 1) -> Path:
    """Write `model` as a SavedModel with input batch `batch` (None = dynamic)."""
    import tensorflow as tf

    shape = (batch,) + input_shape(model)[1:]
    dtype = model.inputs[0].dtype
    spec = tf.TensorSpec(shape, tf.as_dtype(dtype if isinstance(dtype, str) else getattr(dtype, "name", "float32")), name="input")
    try:
        from edgeopt.runtime.quiet import native_quiet

        with native_quiet(), contextlib.redirect_stdout(io.StringIO()):
            model.export(str(directory), format="tf_saved_model", input_signature=[spec], verbose=False)
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
