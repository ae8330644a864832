"""`edgeopt cluster` through the real CLI: outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(3, activation="softmax", name="dense")(h)
    model = keras.Model(inp, out)
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    np.savez(path.parent / "train.npz", x=rng.random((64, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 3, 64))
    return path


def test_cluster_writes_a_clustered_model(cli, tiny_model: Path, tmp_path: Path) -> None:
    import keras

    out = tmp_path / "c.keras"
    r = cli("cluster", tiny_model, "--clusters", "4", "--init", "kmeans++", "--finetune",
            tiny_model.parent / "train.npz", "--epochs", "1", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [x["layer"] for x in data["layers"]] == ["conv", "dense"]
    assert data["finetune_epochs"] == 1 and data["spec"]["init"] == "kmeans++"
    m = keras.saving.load_model(out)
    assert np.unique(m.get_layer("conv").kernel.numpy()).size <= 4
    assert np.unique(m.get_layer("dense").kernel.numpy()).size <= 4


def test_pattern_matching_nothing_is_a_warning(cli, tiny_model: Path, tmp_path: Path) -> None:
    r = cli("cluster", tiny_model, "--layers", "^nope$", "--out", tmp_path / "c.keras", "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["layers"] == [] and "matches no layer" in data["warnings"][0]
    assert "matches no layer" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("--clusters", "1"), "between 2"),
    (("--clusters", "40"), "fewer than --clusters 40"),  # conv kernel has 36 weights
    (("--layers", "("), "not a valid regular expression"),
    (("--init", "random"), "'random' is not one of 'linear', 'kmeans++'"),
    (("--epochs", "2"), "needs training data"),
])
def test_bad_input_exits_2(cli, tiny_model: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = cli("cluster", tiny_model, *args, "--out", tmp_path / "c.keras")
    assert r.exit_code == 2 and message in r.stderr
    assert not (tmp_path / "c.keras").exists()


def test_tflite_or_onnx_input_exits_2(cli, samples: Path, tmp_path: Path) -> None:
    fake = tmp_path / "m.tflite"
    fake.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    r = cli("cluster", fake, "--out", tmp_path / "c.keras")
    assert r.exit_code == 2 and "needs the Keras model" in r.stderr


def test_size_ratios_are_clustered_over_original(cli, tiny_model: Path, tmp_path: Path) -> None:
    """One direction for every ratio in edgeopt: optimized / baseline (here clustered / original)."""
    r = cli("cluster", tiny_model, "--clusters", "2", "--out", tmp_path / "c.keras", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    before, after = d["size_before"], d["size_after"]
    assert d["tflite_gzip_ratio"] == after["tflite_gzip_bytes"] / before["tflite_gzip_bytes"] < 1
    assert d["keras_gzip_ratio"] == after["keras_gzip_bytes"] / before["keras_gzip_bytes"]
    human = cli("cluster", tiny_model, "--clusters", "2", "--out", tmp_path / "h.keras")
    assert human.exit_code == 0 and "size ratio (after/before)" in human.stdout
    assert f"{d['tflite_gzip_ratio']:.4g}" in human.stdout
