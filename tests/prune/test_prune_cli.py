"""`edgeopt prune` through the real CLI: a ratio of 0 is a request, --target supplies [prune] settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def model(samples: Path) -> Path:
    return samples / "digits_cnn.keras"


def test_ratio_zero_is_an_identity_prune(cli, model: Path, tmp_path: Path) -> None:
    import keras

    out = tmp_path / "same.keras"
    r = cli("prune", model, "--ratio", "0", "--out", out, "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["requested"] == {"ratio": 0.0, "macs_reduction": None}
    assert rep["params_after"] == rep["params_before"] and rep["macs_after"] == rep["macs_before"]
    before, after = keras.saving.load_model(model), keras.saving.load_model(out)
    assert after.count_params() == before.count_params()
    for a, b in zip(before.weights, after.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_round_to_comes_from_the_target(cli, model: Path, tmp_path: Path) -> None:
    """embedded-mcu sets prune.round_to = 4 (CMSIS-NN); --round-to overrides it."""
    r = cli("prune", model, "--ratio", "0.3", "--target", "embedded-mcu", "--no-finetune", "--out", tmp_path / "a.keras",
            "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["round_to"] == 4 and all(g["channels_after"] % 4 == 0 for g in rep["groups"])
    assert any(g["channels_after"] % 8 for g in rep["groups"])  # so the override below is visible
    r = cli("prune", model, "--ratio", "0.3", "--target", "embedded-mcu", "--round-to", "8", "--no-finetune",
            "--out", tmp_path / "b.keras", "--json")
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["round_to"] == 8 and all(g["channels_after"] % 8 == 0 for g in rep["groups"])
    r = cli("prune", model, "--ratio", "0.3", "--round-to", "0", "--no-finetune", "--out", tmp_path / "c.keras")
    assert r.exit_code == 2 and "--round-to" in r.stderr and not (tmp_path / "c.keras").exists()


def test_criterion_spelling_is_the_profiles(cli, model: Path, tmp_path: Path) -> None:
    r = cli("prune", model, "--ratio", "0.25", "--criterion", "bn-scale", "--allocation", "uniform", "--no-finetune",
            "--out", tmp_path / "p.keras", "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["criterion"] == "bn-scale" and rep["allocation"] == "uniform"
    r = cli("prune", model, "--ratio", "0.25", "--criterion", "l3", "--out", tmp_path / "q.keras")
    assert r.exit_code == 2 and "'l3' is not one of 'l1', 'l2', 'bn-scale', 'random'" in r.stderr
