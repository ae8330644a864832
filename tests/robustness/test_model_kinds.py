"""Item 9 of issue 12: models the int8 path cannot calibrate are refused with a fix (were exit 1 in the converter)."""

from __future__ import annotations

import os

import pytest

from tests.robustness.conftest import edgeopt, error_line

pytestmark = pytest.mark.tensorflow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras

    work = tmp_path_factory.mktemp("kinds")
    inp = keras.Input((10,), dtype="int32")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(inp))
    keras.Model(inp, keras.layers.Dense(3)(x)).save(work / "emb.keras")
    inp = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    keras.Model(inp, keras.layers.Dense(3)(x)).save(work / "dyn.keras")
    (work / "f16.toml").write_text('extends = "mobile-cpu"\n[quantize]\nscheme = "float16"\n')
    return work


@pytest.mark.parametrize("name, message", [
    ("emb", "input is int32 (token ids, e.g. an Embedding)"),
    ("dyn", "the input shape (N, ?, ?, 3) has dynamic dimensions, so random calibration"),
])
def test_int8_refuses_what_it_cannot_calibrate(models, tmp_path, name, message):
    r = edgeopt("build", models / f"{name}.keras", "--target", "mobile-cpu", "--out", tmp_path / "out", "--no-bench",
                "--random-calibration")
    line = error_line(r)
    assert message in line, line
    assert not (tmp_path / "out").exists()


def test_the_suggested_float16_profile_builds_the_embedding_model(models, tmp_path):
    r = edgeopt("build", models / "emb.keras", "--target", models / "f16.toml", "--out", tmp_path / "out", "--no-bench")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "emb.tflite").stat().st_size > 0
