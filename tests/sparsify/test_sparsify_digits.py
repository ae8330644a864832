"""Acceptance on digits_cnn: 80 % unstructured sparsity through the real CLI, the .tflite read back.

One module-scoped run (fine-tuning takes about a minute of CPU); the tests assert on its outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeopt.sparsify.artifact import weight_zeros, zeros_by_layer

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def run(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    tmp = tmp_path_factory.mktemp("sp")
    arts = tmp / "arts"
    arts.mkdir()
    out = tmp / "sparse.keras"
    r = CliRunner().invoke(app, ["sparsify", str(samples / "digits_cnn.keras"), "--sparsity", "0.8",
                                 "--train", str(samples / "digits.train.npz"), "--out", str(out),
                                 "--artifacts", str(arts), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return {"data": json.loads(r.stdout), "out": out, "arts": arts}


def test_keras_model_is_exactly_eighty_percent_sparse_and_keeps_accuracy(run: dict[str, Any]) -> None:
    import keras

    d = run["data"]
    assert [x["layer"] for x in d["layers"]][:2] == ["stem_conv", "res1_a_conv"] and len(d["layers"]) == 8
    assert all(abs(x["sparsity"] - 0.8) < 0.005 for x in d["layers"])
    m = keras.saving.load_model(run["out"])
    kernels = {lay.name: np.asarray(lay.kernel) for lay in m.layers if hasattr(lay, "kernel")}
    zeros = sum(int((k == 0).sum()) for k in kernels.values())
    assert zeros == d["zeros"] and zeros / sum(k.size for k in kernels.values()) == pytest.approx(0.8, abs=1e-3)
    assert d["finetune_epochs"] == 12 and d["mask_updates"] > 10
    assert d["accuracy_before"] == pytest.approx(99.72, abs=0.01)
    assert d["accuracy_drop"] <= 1.0  # within 1 point of float after fine-tuning


def test_int8_tflite_keeps_the_zeros(run: dict[str, Any]) -> None:
    d = run["data"]
    data = (run["arts"] / "int8_sparse.tflite").read_bytes()
    per_layer = zeros_by_layer(data, [x["layer"] for x in d["layers"]])
    assert set(per_layer) == {x["layer"] for x in d["layers"]}
    for name, w in per_layer.items():
        assert w.dtype == "int8" and w.sparsity >= 0.79, name
    dense = weight_zeros((run["arts"] / "int8_dense.tflite").read_bytes())
    assert sum(w.zeros for w in dense) / sum(w.elements for w in dense) < 0.05  # the zeros come from sparsify
    assert d["gains"]["int8_sparsity"] >= 0.79


def test_gains_report_bytes_accuracy_and_a_plain_latency_statement(run: dict[str, Any]) -> None:
    g = run["data"]["gains"]
    arts = {a["variant"]: a for a in g["artifacts"]}
    assert set(arts) == {"int8 dense", "int8 sparse", "int8 sparse-encoded", "float32 dense", "float32 sparse",
                         "float32 sparse-encoded"}
    dense, sparse = arts["int8 dense"], arts["int8 sparse"]
    assert sparse["raw_bytes"] == pytest.approx(dense["raw_bytes"], rel=0.01)  # zeros are stored: raw size unchanged
    assert sparse["gzip_bytes"] < 0.6 * dense["gzip_bytes"]  # but they compress
    for a in arts.values():
        assert a["raw_bytes"] == (run["arts"] / (a["variant"].replace(" ", "_") + ".tflite")).stat().st_size
        assert a["gzip_bytes"] > 0
    assert arts["float32 sparse-encoded"]["sparse_tensors"] >= 1
    assert arts["float32 sparse-encoded"]["raw_bytes"] < 0.6 * arts["float32 sparse"]["raw_bytes"]
    assert sparse["runs"] and sparse["top1"] >= 98.72
    for v in ("int8 sparse", "float32 sparse", "float32 sparse-encoded"):
        assert arts[v]["latency_ratio"] is not None and arts[v]["baseline"] is not None
        assert arts[v]["delegate"] == "xnnpack"
    enc = arts["int8 sparse-encoded"]  # XNNPACK refuses sparse int8 FULLY_CONNECTED; the builtin kernels run it
    assert enc["sparse_tensors"] >= 1 and enc["raw_bytes"] < 0.7 * dense["raw_bytes"]
    assert enc["runs"] and enc["top1"] >= 98.72 and enc["latency_ratio"] is not None
    if enc["delegate"] != "xnnpack":
        assert enc["delegate"].startswith("none (XNNPACK refused: ") and "/tmp" not in enc["delegate"]
        assert enc["baseline"] == "int8 dense (both without XNNPACK)"
    assert "the p50 of int8 dense" in g["latency_statement"]
    assert "no switch" in g["xnnpack_sparse"] and g["mcu_flash"].startswith("flash unchanged")
    assert "refuses pruning (sparsity) compression of the 8 sparsified tensors" in g["mcu_flash"]
