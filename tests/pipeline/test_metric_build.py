"""Task-appropriate accuracy in `edgeopt build`: a regression model and a segmentation-map model are scored by SNR
by default, with plausible figures; top-1 on a map is refused. Real TensorFlow, LiteRT and onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.pipeline.build import BuildRequest, build

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    import keras

    d = tmp_path_factory.mktemp("metric")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = rng.random((300, 6)).astype("float32")
    t = (x @ rng.standard_normal((6, 1)) + 0.5).astype("float32")
    i = keras.Input((6,))
    reg = keras.Model(i, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(i)))
    reg.compile("adam", "mse")
    reg.fit(x, t, epochs=5, batch_size=32, verbose=0)
    reg.save(d / "reg.keras")
    np.savez(d / "reg.calib.npz", x=x[:100])
    np.savez(d / "reg.eval.npz", x=x[100:])
    img = rng.random((64, 8, 8, 1)).astype("float32")
    j = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(j)
    seg = keras.Model(j, keras.layers.Conv2D(3, 1, activation="softmax")(h))  # per-pixel classes: a map
    seg.save(d / "seg.keras")
    np.savez(d / "seg.calib.npz", x=img[:32])
    np.savez(d / "seg.eval.npz", x=img[32:], y=np.zeros(32, np.int64))
    (d / "f16.toml").write_text('extends = "mobile-cpu"\nname = "f16"\n[quantize]\nscheme = "float16"\n')
    return d


def _outputs(d: Path, model: str, target: str, out: str):
    res = build(BuildRequest(model=d / model, target=target, out=d / out, benchmark=False))
    acc = res.report.optimized.accuracy
    assert acc is not None
    return res, acc


def test_regression_output_is_scored_by_snr(models: Path) -> None:
    res, int8 = _outputs(models, "reg.keras", "mobile-cpu", "reg-int8")
    _, f16 = _outputs(models, "reg.keras", str(models / "f16.toml"), "reg-f16")
    assert int8.metric == "snr" and [o.metric for o in int8.outputs] == ["snr"]
    assert 20 < int8.outputs[0].value < 80 and int8.drop is None and int8.value is None
    assert f16.outputs[0].value > int8.outputs[0].value + 15  # float16 is much closer to the float model
    assert not any("top-1 not measured" in n for n in res.report.notes)
    # max_accuracy_drop is for class scores; the profile's SNR floor checks the regression value (no cosine: one
    # value per sample)
    rows = {b.name: b for b in res.report.budgets}
    assert rows["min_snr_db"].ok is True and rows["min_snr_db"].actual == int8.outputs[0].value
    assert "min_cosine" not in rows and int8.outputs[0].cosine is None
    assert all(b.name != "max_accuracy_drop" for b in res.report.budgets)


def test_segmentation_map_is_scored_by_snr_on_onnx(models: Path) -> None:
    _, acc = _outputs(models, "seg.keras", "edge-server", "seg-onnx")
    (o,) = acc.outputs
    assert o.metric == "snr" and o.value > 20 and o.cosine > 0.99 and o.agreement is None


def test_top1_on_a_map_is_refused(cli, models: Path, tmp_path: Path) -> None:
    res = cli("build", models / "seg.keras", "--target", "mobile-cpu", "--out", tmp_path / "o", "--metric", "top1",
              "--no-bench")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "metric top1 does not fit output" in lines[0] and "(N, 8, 8, 3)" in lines[0]
    assert not (tmp_path / "o").exists()


def test_accuracy_control_works_on_the_snr_of_a_regression_output(models: Path) -> None:
    prof = models / "snr.toml"
    prof.write_text('extends = "edge-server"\nname = "snr"\n[budgets]\nmin_snr_db = 70.0\n')
    res, acc = _outputs(models, "reg.keras", str(prof), "reg-partial")
    part = res.report.stages.partial
    assert part is not None and part.steps[0].metric == "snr" and part.steps[0].within_budget is False
    assert part.steps[0].figure is not None and part.steps[0].figure < 70  # plain int8 misses the budget
    chosen = part.steps[part.chosen]
    assert part.met and chosen.within_budget and chosen.out_of_int8 and (chosen.figure or 0) >= 70
    assert acc.outputs[0].value >= 70 and {b.name: b.ok for b in res.report.budgets}["min_snr_db"] is True
