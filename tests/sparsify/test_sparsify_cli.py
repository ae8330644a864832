"""`edgeopt sparsify` through the real CLI on tiny models: patterns, refusals, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conv(1 -> 8) then Conv(8 -> 8) then Dense(8*4*4 -> 3): the first conv has 1 input channel."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, name="first")(inp)
    h = keras.layers.Conv2D(8, 3, name="second")(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(3, activation="softmax", name="head")(h)
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    keras.Model(inp, out).save(path)
    rng = np.random.default_rng(0)
    np.savez(path.parent / "train.npz", x=rng.random((64, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 3, 64))
    return path


def _kernels(path: Path) -> dict[str, np.ndarray]:
    import keras

    m = keras.saving.load_model(path)
    return {lay.name: np.asarray(lay.kernel) for lay in m.layers if hasattr(lay, "kernel")}


@pytest.mark.parametrize("value", ["1.0", "-0.1", "1.5", "nan"])
def test_sparsity_outside_the_unit_interval_is_exit_2_one_line(cli, tiny: Path, tmp_path: Path, value: str) -> None:
    r = cli("sparsify", tiny, "--sparsity", value, "--no-finetune", "--no-measure", "--out", tmp_path / "o.keras")
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0 and "outside [0, 1)" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o.keras").exists()


def test_fine_tuning_without_training_data_is_exit_2(cli, tiny: Path, tmp_path: Path) -> None:
    r = cli("sparsify", tiny, "--sparsity", "0.5", "--no-measure", "--out", tmp_path / "o.keras")
    assert r.exit_code == 2
    assert "needs training data" in r.stderr and "--no-finetune" in r.stderr and r.stderr.count("\n") == 1


def test_two_four_on_a_one_channel_layer_names_it(cli, tiny: Path, tmp_path: Path) -> None:
    r = cli("sparsify", tiny, "--pattern", "2:4", "--no-finetune", "--no-measure", "--out", tmp_path / "o.keras")
    assert r.exit_code == 2
    assert "layer 'first'" in r.stderr and "1 input channels" in r.stderr and "--layers" in r.stderr


def test_pattern_and_sparsity_conflicts_are_exit_2(cli, tiny: Path, tmp_path: Path) -> None:
    o = tmp_path / "o.keras"
    r = cli("sparsify", tiny, "--pattern", "2:4", "--sparsity", "0.8", "--no-finetune", "--no-measure", "--out", o)
    assert r.exit_code == 2 and "fixes the sparsity at 0.5" in r.stderr
    r = cli("sparsify", tiny, "--no-finetune", "--no-measure", "--out", o)
    assert r.exit_code == 2 and "needs --sparsity" in r.stderr
    r = cli("sparsify", tiny, "--pattern", "3x3", "--sparsity", "0.5", "--no-finetune", "--no-measure", "--out", o)
    assert r.exit_code == 2 and "is not a sparsity pattern" in r.stderr


def test_two_four_fine_tuned_on_the_layers_that_take_it(cli, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "nm.keras"
    r = cli("sparsify", tiny, "--pattern", "2:4", "--layers", "second|head", "--train", tiny.parent / "train.npz",
            "--epochs", "2", "--no-measure", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [x["layer"] for x in d["layers"]] == ["second", "head"] and d["spec"]["pattern"] == "2:4"
    assert d["finetune_epochs"] == 2 and len(d["loss_history"]) == 2
    k = _kernels(out)
    groups = k["second"].reshape(3, 3, 2, 4, 8)  # (kh, kw, in groups, 4, out)
    assert ((groups != 0).sum(axis=3) <= 2).all() and (k["second"] == 0).mean() == pytest.approx(0.5)
    assert ((k["head"].reshape(32, 4, 3) != 0).sum(axis=1) <= 2).all()
    assert (k["first"] == 0).sum() == 0  # not selected: untouched


def test_one_shot_global_and_block(cli, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.keras"
    r = cli("sparsify", tiny, "--sparsity", "0.6", "--allocation", "global", "--no-finetune", "--no-measure",
            "--out", out, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["finetune_epochs"] == 0 and d["sparsity"] == pytest.approx(0.6, abs=1e-3)
    k = _kernels(out)
    assert sum(int((v == 0).sum()) for v in k.values()) == d["zeros"]
    out2 = tmp_path / "b.keras"
    r = cli("sparsify", tiny, "--sparsity", "0.5", "--pattern", "block:1x4", "--layers", "second|head",
            "--no-finetune", "--no-measure", "--out", out2, "--json")
    assert r.exit_code == 0, r.output
    head = _kernels(out2)["head"].reshape(32, 4, 3)
    assert ((head == 0).all(axis=1) | (head != 0).all(axis=1)).all()  # whole 1x4 blocks along the input
    assert (head == 0).mean() == pytest.approx(0.5)
