"""Keras inputs beyond .keras: legacy .h5 and SavedModel folders build like the .keras file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow


@pytest.mark.parametrize("kind", ["h5", "saved_model"])
def test_h5_and_saved_model_build(cli, tmp_path: Path, samples: Path, kind: str):
    import keras

    model = keras.saving.load_model(samples / "digits_dscnn.keras")
    if kind == "h5":
        path = tmp_path / "m.h5"
        model.save(path)
    else:
        path = tmp_path / "m_saved"
        model.export(str(path), format="tf_saved_model", verbose=False)
    r = cli("build", path, "--target", "mobile-cpu", "--out", tmp_path / "o", "--no-bench", "--json",
            "--calib", samples / "digits_dscnn.calib.npz", "--eval", samples / "digits_dscnn.eval.npz")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["input"]["format"] == kind
    assert rep["optimized"]["accuracy"]["value"] > 95 and rep["optimized"]["accuracy"]["drop"] <= 1.0
    assert rep["ratios"]["size"] <= 0.30


def test_folder_without_saved_model_is_refused(cli, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    r = cli("build", tmp_path / "empty", "--target", "mobile-cpu", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "without saved_model.pb" in r.stderr
