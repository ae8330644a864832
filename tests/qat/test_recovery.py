"""QAT recovers what int8 PTQ loses, measured in the deployed runtimes (LiteRT, host TFLite Micro).

Both constructed models (tests/qat/cases.py) lose > 3 points with plain int8 (min/max calibration on
200 training samples that include the rare tail); 3 epochs of QAT bring int8 within 0.5 points of float.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeopt.profiles.schema import IOType, Scheme
from tests.qat.cases import digits, dscnn_tail, heavy_tail_mlp, rare_first

pytestmark = pytest.mark.tensorflow

PTQ_LOSS = 3.0  # points PTQ must lose
QAT_BUDGET = 0.5  # points QAT may lose


def _tflite(model: Any, tmp: Path, name: str, recipe: Any = None) -> Path:
    from edgeopt.convert.savedmodel import export_saved_model
    from edgeopt.convert.tflite import to_tflite
    from edgeopt.quantize.tflite import converter_setup

    sm = export_saved_model(model, tmp / f"{name}_sm")
    path = tmp / f"{name}.tflite"
    path.write_bytes(to_tflite(sm, None if recipe is None else converter_setup(recipe)))
    return path


def _litert_top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from edgeopt.validate.accuracy import predict, top1

    return top1(predict(path, x), y)


def _tflm_top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.mcu.arena import measure_arena
    from edgeopt.mcu.tflm import run_tflm

    it = Interpreter(model_path=str(path))
    scale, zp = it.get_input_details()[0]["quantization"]
    feeds = [[np.clip(np.round(s[None] / scale + zp), -128, 127).astype(np.int8)] for s in x]
    run = run_tflm(path, measure_arena(path).arena_bytes, feeds)
    pred = np.array([o[0].reshape(-1).argmax() for o in run.outputs])
    return float(100.0 * np.mean(pred == y))


def _case(build: Any, image: bool, int8_io: bool, tmp: Path) -> dict[str, Any]:
    from edgeopt.qat.export import qat_tflite
    from edgeopt.qat.train import QatSpec, train_qat
    from edgeopt.quantize.tflite import TfliteRecipe

    xtr, ytr, xev, yev = digits(image)
    xtr, ytr = rare_first(xtr, ytr)  # the 200 calibration samples include the tail, as real data may
    model = build()
    io = IOType.INT8 if int8_io else IOType.FLOAT32
    fl = _tflite(model, tmp, "float")
    ptq = _tflite(model, tmp, "ptq", TfliteRecipe(Scheme.INT8, io, io, True, xtr[:200]))
    result = train_qat(model, QatSpec(epochs=3, learning_rate=1e-4), xtr, ytr, xev, yev)
    qat = tmp / "qat.tflite"
    qat.write_bytes(qat_tflite(result.model, io, io))
    return {"float": fl, "ptq": ptq, "qat": qat, "x": xev, "y": yev, "result": result}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _case(heavy_tail_mlp, False, False, tmp_path_factory.mktemp("mlp"))


@pytest.fixture(scope="module")
def dscnn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _case(dscnn_tail, True, True, tmp_path_factory.mktemp("dscnn"))


def test_heavy_tail_mlp_in_litert(mlp):
    f, p, q = (_litert_top1(mlp[k], mlp["x"], mlp["y"]) for k in ("float", "ptq", "qat"))
    assert f > 95.0
    assert f - p > PTQ_LOSS, (f, p)
    assert f - q <= QAT_BUDGET, (f, p, q)
    r = mlp["result"]
    assert r.epochs == 3 and len(r.losses) == 3 and r.train_seconds > 0 and r.quantizers == 4


def test_dscnn_int8_io_in_litert_and_tflm(dscnn):
    f = _litert_top1(dscnn["float"], dscnn["x"], dscnn["y"])
    p, q = (_litert_top1(dscnn[k], dscnn["x"], dscnn["y"]) for k in ("ptq", "qat"))
    assert f > 95.0
    assert f - p > PTQ_LOSS, (f, p)
    assert f - q <= QAT_BUDGET, (f, p, q)
    p_tflm, q_tflm = (_tflm_top1(dscnn[k], dscnn["x"], dscnn["y"]) for k in ("ptq", "qat"))
    assert f - p_tflm > PTQ_LOSS and f - q_tflm <= QAT_BUDGET, (f, p_tflm, q_tflm)
    assert dscnn["result"].folded_bn == ("stem_bn", "pw_bn")
