"""`edgeopt sparsify`: sparsify a Keras file and, optionally, measure what the zeros buy; the model's code runs
in the sandbox (edgeopt.sandbox), both steps in one confined child since the second needs the first's model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgeopt.errors import InputError
from edgeopt.sparsify.gains import Gains
from edgeopt.sparsify.sparsifier import SparsifyResult, SparsifySpec


@dataclass(frozen=True)
class SparsifyRun:
    result: SparsifyResult  # without the live model
    gains: Gains | None  # None without measuring


def sparsify_file(model_path: Path, out: Path, spec: SparsifySpec, *, train: Path | None, eval_data: Path | None,
                  calib: Path | None, artifacts: Path | None, unsafe_load: bool) -> SparsifyRun:
    """Sparsify `model_path` into `out`; with `calib`, convert and measure (artifacts kept in `artifacts`)."""
    from edgeopt.load.keras_job import check_keras_job
    from edgeopt.sandbox.runner import run_model_code

    if spec.finetune and train is None:
        msg = ("sparsifying with fine-tuning needs training data; give --train data.npz (x, y) "
               "or prune one-shot with --no-finetune")
        raise InputError(msg)
    check_keras_job(Path(model_path), Path(out), "sparsifying",
                    {"training data": train if spec.finetune else None, "eval data": eval_data})
    return run_model_code(  # type: ignore[no-any-return]
        "edgeopt.sparsify.run:sparsify_file_here",
        {"model_path": model_path, "out": out, "spec": spec, "train": train, "eval_data": eval_data, "calib": calib,
         "artifacts": artifacts, "unsafe_load": unsafe_load},
        SparsifyRun, out=Path(out), writable=() if artifacts is None else (Path(artifacts),))


def sparsify_file_here(model_path: Path, out: Path, spec: SparsifySpec, train: Path | None, eval_data: Path | None,
                       calib: Path | None, artifacts: Path | None, unsafe_load: bool) -> SparsifyRun:
    """sparsify_file in this process (the sandbox's side)."""
    from edgeopt.sparsify.gains import measure_files
    from edgeopt.sparsify.sparsifier import sparsify_keras_file

    result = sparsify_keras_file(model_path, out, spec, train=train, eval_data=eval_data, unsafe_load=unsafe_load)
    gains = None
    if calib is not None:
        gains = measure_files(model_path, result, calib, eval_data, artifacts, unsafe_load=unsafe_load)
    return SparsifyRun(replace(result, model=None), gains)
