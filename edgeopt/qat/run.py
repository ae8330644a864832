"""`edgeopt qat` as a library call: load, train with fake quantization, save, measure in LiteRT.

Accuracy is measured on the same eval samples in LiteRT for the float model, its plain
post-training int8 (calibrated on the first 200 training samples) and the QAT int8 artifact.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import InputError
from edgeopt.profiles.schema import IOType
from edgeopt.qat.train import QatResult, QatSpec, check_training_data

PTQ_CALIBRATION = 200  # training samples that calibrate the PTQ comparison


@dataclass(frozen=True)
class QatFileResult:
    qat: QatResult
    out: Path
    artifact_bytes: int  # QAT int8 .tflite size
    float_accuracy: float | None  # LiteRT, float .tflite
    ptq_accuracy: float | None  # LiteRT, plain int8 (min/max calibration)
    qat_accuracy: float | None  # LiteRT, QAT int8 (trained ranges)

    def to_dict(self) -> dict[str, Any]:
        return {**self.qat.to_dict(), "out": str(self.out), "int8_tflite_bytes": self.artifact_bytes,
                "scales_from": "qat", "runtime": "litert",
                "accuracy": {"float": self.float_accuracy, "ptq_int8": self.ptq_accuracy, "qat_int8": self.qat_accuracy}}


def litert_top1(data: bytes, x: np.ndarray, y: np.ndarray | None, tmp: Path, name: str) -> float | None:
    from edgeopt.validate.accuracy import predict, top1

    if y is None or y.dtype.kind not in "iu":
        return None
    path = tmp / f"{name}.tflite"
    path.write_bytes(data)
    return round(top1(predict(path, x), y), 4)


def qat_keras_file(model_path: Path, out: Path, train_path: Path | None, spec: QatSpec,
                   eval_path: Path | None = None, unsafe_load: bool = False) -> QatFileResult:
    """Train `model_path` with fake quantization and write the QAT model (.keras) to `out` atomically; the
    model's code runs in the sandbox (the result carries no live model)."""
    from edgeopt.load.keras_job import check_keras_job
    from edgeopt.sandbox.runner import run_model_code

    if train_path is None:
        msg = "QAT needs training data; give --train train.npz (arrays x and y)"
        raise InputError(msg)
    check_keras_job(Path(model_path), Path(out), "QAT", {"training data": train_path, "eval data": eval_path})
    return run_model_code(  # type: ignore[no-any-return]
        "edgeopt.qat.run:qat_keras_file_here",
        {"model_path": model_path, "out": out, "train_path": train_path, "spec": spec, "eval_path": eval_path,
         "unsafe_load": unsafe_load}, QatFileResult, out=Path(out))


def qat_keras_file_here(model_path: Path, out: Path, train_path: Path | None, spec: QatSpec,
                        eval_path: Path | None = None, unsafe_load: bool = False) -> QatFileResult:
    """qat_keras_file in this process (the sandbox's side)."""
    from edgeopt.atomic import write_bytes_atomic
    from edgeopt.convert.savedmodel import export_saved_model
    from edgeopt.convert.tflite import to_tflite
    from edgeopt.load.keras_job import open_keras_job
    from edgeopt.profiles.schema import Scheme
    from edgeopt.qat.export import qat_tflite
    from edgeopt.qat.train import train_qat
    from edgeopt.quantize.tflite import TfliteRecipe, converter_setup

    assert train_path is not None  # qat_keras_file refused it
    out = Path(out)
    job = open_keras_job(Path(model_path), out, "QAT", train_path, eval_path, unsafe_load)
    model, train, ev = job.model, job.train, job.eval
    assert train is not None
    check_training_data(train.x, train.y)
    assert train.y is not None
    result = train_qat(model, spec, train.x, train.y, None if ev is None else ev.x, None if ev is None else ev.y)
    with tempfile.TemporaryDirectory(prefix="edgeopt-qat-") as tmp:
        t = Path(tmp)
        data = qat_tflite(result.model, IOType.FLOAT32, IOType.FLOAT32)
        accs: tuple[float | None, ...] = (None, None, None)
        if ev is not None:
            sm = export_saved_model(model, t / "float_sm", batch=1)
            recipe = TfliteRecipe(Scheme.INT8, per_channel=spec.per_channel, calibration=train.x[:PTQ_CALIBRATION])
            accs = (litert_top1(to_tflite(sm), ev.x, ev.y, t, "float"),
                    litert_top1(to_tflite(sm, converter_setup(recipe)), ev.x, ev.y, t, "ptq"),
                    litert_top1(data, ev.x, ev.y, t, "qat"))
        p = t / "model.qat.keras"
        result.model.save(p)
        write_bytes_atomic(out, p.read_bytes())
    return QatFileResult(replace(result, model=None), out, len(data), *accs)
