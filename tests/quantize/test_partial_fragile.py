"""Partial quantization with accuracy control on a model with one fragile layer (real converters/runtimes).

The model: a digits MLP with one deliberately fragile layer.

`fragile` (Dense) gets a weight of 1000 in every output column, on an input unit that is
always exactly 0 (a dead ReLU unit of the layer before). The float model ignores it (1000 * 0),
but int8 per-channel weight scales become 1000/127, so all other weights of `fragile` round
to 0: plain int8 destroys that layer only. Keeping it in float restores the accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeopt.errors import DataError, ProfileError
from edgeopt.profiles.schema import Fallback, Profile
from edgeopt.quantize.partial import (
    PartialSettings,
    partial_quantize_onnx,
    partial_quantize_tflite,
    settings_from_profile,
)
from edgeopt.quantize.sensitivity import rank, sensitivity_onnx, sensitivity_tflite

pytestmark = pytest.mark.tensorflow

BUDGET = 1.0  # points
OUTLIER = 1000.0


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(x.shape[0])
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def fragile_mlp() -> tuple[Any, dict[str, np.ndarray]]:
    import keras

    keras.utils.set_random_seed(0)
    xtr, ytr, xev, yev = digits_data()
    inp = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(48, activation="relu", name="hidden")(inp)
    h = keras.layers.Dense(32, activation="relu", name="fragile")(h)
    out = keras.layers.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="fragile_mlp")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr, ytr, epochs=12, batch_size=128, verbose=0)
    hidden, fragile = model.get_layer("hidden"), model.get_layer("fragile")
    k, b = hidden.get_weights()
    k[:, 0], b[0] = 0.0, -1.0  # unit 0 of `hidden` is dead: relu(-1) = 0 for every input
    hidden.set_weights([k, b])
    k, b = fragile.get_weights()
    k[0, :] = OUTLIER  # ...and `fragile` reads it with a huge weight
    fragile.set_weights([k, b])
    return model, {"calib": xtr[:200], "x": xev, "y": yev}



@pytest.fixture(scope="module")
def fragile():
    return fragile_mlp()


@pytest.fixture(scope="module")
def fragile_onnx(fragile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeopt.convert.onnx import keras_to_onnx

    path = tmp_path_factory.mktemp("onnx") / "fragile.onnx"
    path.write_bytes(keras_to_onnx(fragile[0], 17))
    return path


def test_tflite_sensitivity_ranks_the_fragile_layer_first(fragile) -> None:
    model, d = fragile
    rows = sensitivity_tflite(model, d["calib"][:64])
    assert rank(rows)[0].layer == "fragile"
    by_layer = {r.layer: r for r in rows}
    assert by_layer["fragile"].snr_db < 10 < by_layer["hidden"].snr_db
    assert by_layer["hidden"].rmse > 0 and by_layer["hidden"].op_type == "FULLY_CONNECTED"
    assert sum(r.macs_share for r in rows) == pytest.approx(1.0)


def test_onnx_sensitivity_ranks_the_fragile_node_first(fragile, fragile_onnx: Path) -> None:
    rows = sensitivity_onnx(fragile_onnx, fragile[1]["calib"][:64])
    assert "fragile" in rank(rows)[0].name and rank(rows)[0].op_type in ("Gemm", "MatMul")
    assert sum(r.macs_share for r in rows) == pytest.approx(1.0)


def test_sensitivity_without_calibration_is_input_error(fragile) -> None:
    with pytest.raises(DataError) as exc:
        sensitivity_tflite(fragile[0], None)  # type: ignore[arg-type]
    assert exc.value.exit_code == 2


def test_tflite_accuracy_control_moves_only_the_fragile_layer(fragile) -> None:
    model, d = fragile
    r = partial_quantize_tflite(model, d["calib"], d["x"], d["y"], PartialSettings(BUDGET, benchmark=True))
    first, last = r.steps[0], r.chosen_step
    assert first.scheme == "int8" and first.accuracy_drop > 20 and not first.within_budget
    assert r.met and last.within_budget and last.layers == ("fragile",)
    assert last.accuracy_drop <= BUDGET and last.latency_p50_ms is not None and last.size_bytes > first.size_bytes
    assert r.model[4:8] == b"TFL3" and len(r.model) == last.size_bytes
    assert r.shortfall() is None


def test_onnx_accuracy_control_moves_only_the_fragile_node(fragile, fragile_onnx: Path) -> None:
    _, d = fragile
    r = partial_quantize_onnx(fragile_onnx, d["calib"], d["x"], d["y"], PartialSettings(BUDGET, benchmark=False))
    assert r.steps[0].accuracy_drop > 20 and r.met and len(r.steps) == 2
    (node,) = r.chosen_step.out_of_int8  # stays float in onnxruntime too (see test_onnx_keep_float.py)
    assert "fragile" in node and r.chosen_step.accuracy_drop <= BUDGET


def test_int16x8_only_cannot_save_a_weight_outlier_and_says_so(fragile) -> None:
    """Not met is a result, not an exception: the best variant is kept and the build's budget decides (exit 3)."""
    model, d = fragile
    settings = PartialSettings(BUDGET, fallbacks=(Fallback.INT16X8,), benchmark=False)
    r = partial_quantize_tflite(model, d["calib"], d["x"][:120], d["y"][:120], settings)
    assert r.met is False and not any(s.within_budget for s in r.steps)
    assert [s.scheme for s in r.steps] == ["int8", "int16x8"] and r.steps[1].layers == ("all",)
    assert r.chosen == min(range(2), key=lambda i: r.steps[i].accuracy_drop)
    assert r.model and len(r.model) == r.chosen_step.size_bytes
    note = r.shortfall()
    assert note is not None and f"did not meet max_accuracy_drop {BUDGET:g} points: 2 variant(s) tried" in note
    assert note.endswith(f"drops {r.chosen_step.accuracy_drop:.2f} points")


def test_settings_follow_a_valid_mcu_profile() -> None:
    """Contradictory [partial] sections are refused when the profile is built (tests/test_profiles.py)."""
    ok = Profile(name="mcu", device_class="embedded-mcu", budgets={"max_accuracy_drop": 1.5},
                 partial={"fallbacks": ["int16x8"]}, mcu={"allow_int16x8": True})
    settings = settings_from_profile(ok)
    assert settings.fallbacks == (Fallback.INT16X8,) and settings.max_accuracy_drop == 1.5
    with pytest.raises(ProfileError, match="no \\[partial\\] section"):
        settings_from_profile(Profile(name="p"))


def test_eval_data_is_required(fragile) -> None:
    model, d = fragile
    with pytest.raises(DataError):
        partial_quantize_tflite(model, d["calib"], np.zeros((0, 64), np.float32), None, PartialSettings(BUDGET))
