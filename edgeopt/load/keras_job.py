"""The common front of the Keras-file commands (prune, cluster, sparsify, qat).

Everything that can be refused is refused before TensorFlow loads the model: a converted artifact as
input, an --out that would replace an input, a name that is not .keras, a missing folder. Then the model
is loaded and its data checked against it (shape, and labels as class indices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.data.datasets import Dataset
from edgeopt.errors import InputError, ModelFileError


@dataclass(frozen=True)
class KerasJob:
    model: Any = None  # the loaded keras.Model
    train: Dataset | None = None
    eval: Dataset | None = None


def check_keras_job(model_path: Path, out: Path, verb: str, data: dict[str, Path | None]) -> None:
    """`verb` ("pruning", "clustering", ...) names the command in messages; `data` maps role -> data file."""
    from edgeopt.atomic import refuse_overwriting
    from edgeopt.load.formats import detect_format
    from edgeopt.load.keras_model import KERAS_FORMATS

    fmt = detect_format(Path(model_path))
    if fmt not in KERAS_FORMATS:
        msg = (f"{model_path}: {verb} needs the Keras model (.keras, .h5 or SavedModel), not a .{fmt.value} file; "
               f"do it before converting, then convert with edgeopt build")
        raise ModelFileError(msg)
    refuse_overwriting(Path(out), {"model": Path(model_path), **data})
    if Path(out).suffix != ".keras":
        msg = f"--out {out}: the model after {verb} is saved as Keras 3; give a path ending in .keras"
        raise InputError(msg)
    if not Path(out).parent.is_dir():
        msg = f"--out {out}: folder {Path(out).parent} does not exist"
        raise InputError(msg)


def open_keras_job(model_path: Path, out: Path, verb: str, train: Path | None, eval_data: Path | None,
                   unsafe_load: bool = False) -> KerasJob:
    """Check (see check_keras_job), load the model, and load `train` / `eval_data` checked against it."""
    from edgeopt.convert.savedmodel import input_shape, output_width
    from edgeopt.data.datasets import check_against_input, check_labels, load_dataset
    from edgeopt.load.keras_model import load_keras

    check_keras_job(model_path, out, verb, {"training data": train, "eval data": eval_data})
    model = load_keras(Path(model_path), unsafe=unsafe_load)
    shape, classes = input_shape(model), output_width(model)

    def data(path: Path | None, role: str) -> Dataset | None:
        if path is None:
            return None
        return check_labels(check_against_input(load_dataset(path, role, shape), shape, role), classes, role)

    return KerasJob(model, data(train, "train"), data(eval_data, "eval"))
