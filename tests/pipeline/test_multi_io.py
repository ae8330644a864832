"""A Keras model with two inputs (an 8x8x1 digit and a 4-vector) and two outputs (a 10-way softmax and a 2-value
regression head), trained a few steps on sklearn's digits, through the whole path: .npz by input name, calibration
of every input, outputs matched by name (TFLite reorders them), accuracy per output, bench, MCU check.

Real TensorFlow, LiteRT, onnxruntime and TFLite Micro.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeopt.pipeline.build import BuildRequest, build

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    import keras
    from sklearn.datasets import load_digits

    d = tmp_path_factory.mktemp("two")
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    v = np.random.default_rng(0).random((x.shape[0], 4)).astype("float32")
    y = digits.target.astype("int64")
    reg = np.stack([x.mean((1, 2, 3)), v.sum(1)], 1).astype("float32")
    keras.utils.set_random_seed(0)
    a, b = keras.Input((8, 8, 1), name="image"), keras.Input((4,), name="extra")
    h = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu")(a))
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([h, keras.layers.Dense(8)(b)]))
    m = keras.Model([a, b], [keras.layers.Dense(10, activation="softmax", name="cls")(h),
                             keras.layers.Dense(2, name="reg")(h)])
    m.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    m.fit([x, v], [y, reg], epochs=3, batch_size=64, verbose=0)
    m.save(d / "two.keras")
    np.savez(d / "calib.npz", image=x[:100], extra=v[:100])
    np.savez(d / "eval.npz", image=x[-200:], extra=v[-200:], y=y[-200:])
    np.savez(d / "eval20.npz", image=x[-20:], extra=v[-20:], y=y[-20:])
    np.savez(d / "positional.npz", arr_0=x[-200:], arr_1=v[-200:], y=y[-200:])
    np.savez(d / "bad.npz", img=x[:10], extra=v[:10])
    return d


@pytest.fixture(scope="module")
def built(two: Path):
    out = {}
    for target in ("mobile-cpu", "edge-server"):
        out[target] = build(BuildRequest(model=two / "two.keras", target=target, out=two / target,
                                         calib=two / "calib.npz", eval=two / "eval.npz", benchmark=False))
    return out


@pytest.mark.parametrize("target", ["mobile-cpu", "edge-server"])
def test_two_inputs_two_outputs_build_with_accuracy_per_output(built, target: str) -> None:
    report = built[target].report
    acc = report.optimized.accuracy
    assert acc is not None and report.schema_version == "2.7"
    assert [(o.name, o.metric) for o in acc.outputs] == [("cls", "top1"), ("reg", "snr")]
    cls, reg = acc.outputs
    # the top-level figure is the primary (first) output's, as before
    assert acc.metric == "top1" and acc.value == cls.value and acc.snr_db == cls.snr_db and acc.drop == cls.drop
    assert cls.value > 50 and cls.reference_value is not None and abs(cls.drop or 0) < 10
    # int8 is close to the float model on both heads: outputs were matched to the right reference
    assert cls.snr_db > 20 and reg.snr_db > 20 and reg.cosine > 0.99
    base = report.baseline.accuracy
    assert base is not None and [o.name for o in base.outputs] == ["cls", "reg"]
    assert all(o.snr_db > 80 for o in base.outputs)  # the float artifact against the Keras model
    assert report.calibration.samples == 100
    md = (built[target].out / "report.md").read_text()
    assert "## Accuracy per output" in md and "| `reg` | snr |" in md
    # the profile's floors check both heads, whatever their metric: no "set min_snr_db" note
    rows = {b.name: b for b in report.budgets}
    assert rows["min_snr_db (cls)"].ok is True and rows["min_snr_db (reg)"].ok is True
    assert rows["min_cosine (reg)"].ok is True and not any("min_snr_db" in n for n in report.notes)


def test_min_snr_db_checks_the_regression_head(two: Path, tmp_path: Path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "edge-server"\nname = "p"\n[budgets]\nmin_snr_db = 99.0\n')
    res = build(BuildRequest(model=two / "two.keras", target=str(prof), out=tmp_path / "out", calib=two / "calib.npz",
                             eval=two / "positional.npz", benchmark=False))  # arr_0, arr_1: in input order
    rows = {b.name: b for b in res.report.budgets}
    assert rows["min_snr_db (reg)"].ok is False and 20 < (rows["min_snr_db (reg)"].actual or 0) < 99
    assert rows["max_accuracy_drop"].ok is True
    assert "min_snr_db (reg)" in [v.name for v in res.violations]
    assert all(v.name.startswith("min_snr_db") for v in res.violations)


def test_bench_runs_the_multi_input_artifacts_with_named_data(cli, built, two: Path) -> None:
    paths = [built["mobile-cpu"].out / "two.tflite", built["edge-server"].out / "two.onnx"]
    res = cli("bench", *paths, "--runs", "3", "--min-seconds", "0.01", "--warmup-seconds", "0", "--input",
              two / "calib.npz", "--json")
    assert res.exit_code == 0, res.output
    results = json.loads(res.stdout)["results"]
    shapes = {Path(r["model"]).name: r["input_shapes"] for r in results}
    assert "1x8x8x1" in shapes["two.tflite"] and "1x4" in shapes["two.tflite"]
    assert shapes["two.onnx"] == "image=1x8x8x1, extra=1x4"


def test_npz_naming_no_input_exits_2_naming_the_arrays(cli, two: Path, tmp_path: Path) -> None:
    res = cli("build", two / "two.keras", "--target", "mobile-cpu", "--out", tmp_path / "o", "--calib",
              two / "calib.npz", "--eval", two / "bad.npz", "--no-bench")
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert "img" in line and "match no model input" in line and "image, extra" in line
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()


def test_small_eval_set_is_noted(two: Path, tmp_path: Path) -> None:
    res = build(BuildRequest(model=two / "two.keras", target="mobile-cpu", out=tmp_path / "out",
                             calib=two / "calib.npz", eval=two / "eval20.npz", benchmark=False))
    note = next(n for n in res.report.notes if n.startswith("eval set too small"))
    assert "20 samples" in note and "5 points" in note and "max_accuracy_drop 1" in note and "100 eval samples" in note


def test_mcu_check_of_a_multi_input_int8_model(cli, two: Path) -> None:
    from edgeopt.mcu.check import check_model
    from edgeopt.profiles import load_profile

    res = build(BuildRequest(model=two / "two.keras", target="embedded-mcu", out=two / "mcu",
                             calib=two / "calib.npz", eval=two / "eval.npz", benchmark=False))
    mcu = res.report.stages.mcu
    assert mcu is not None and mcu.samples_compared > 0 and mcu.bit_exact is not False
    acc = res.report.optimized.accuracy
    assert acc is not None and [o.name for o in acc.outputs] == ["cls", "reg"] and acc.outputs[0].snr_db > 15
    with np.load(two / "eval.npz") as z:
        samples = {"image": z["image"][:4], "extra": z["extra"][:4]}
    report = check_model(res.out / "two.tflite", load_profile("embedded-mcu").profile, samples=samples, sample_count=4)
    assert report.samples_compared == 4
    res_cli = cli("mcu", "check", res.out / "two.tflite", "--target", "embedded-mcu", "--data", two / "eval.npz",
                  "--samples", "3", "--json")  # arrays by input name, labels y ignored
    assert res_cli.exit_code == 0, res_cli.output
    data = json.loads(res_cli.output)
    assert data["samples_compared"] == 3 and data["bit_exact"] is not False


def test_accuracy_control_on_tflite_feeds_both_inputs(two: Path, tmp_path: Path) -> None:
    """[partial] on mobile-cpu: LiteRT's quantization debugger gets both inputs in the TFLite model's order (it
    was skipped with a note: "handles single-input models only")."""
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "mobile-cpu"\nname = "p"\n[budgets]\nmin_snr_db = 45.0\n')
    res = build(BuildRequest(model=two / "two.keras", target=str(prof), out=tmp_path / "out", calib=two / "calib.npz",
                             eval=two / "eval.npz", benchmark=False))
    part = res.report.stages.partial
    assert part is not None and not any("accuracy control ([partial]) skipped" in n for n in res.report.notes)
    import keras

    m = keras.models.load_model(two / "two.keras")  # layer names carry suffixes when other tests made layers first
    conv = next(lay.name for lay in m.layers if isinstance(lay, keras.layers.Conv2D))
    on_extra = next(lay.name for lay in m.layers if isinstance(lay, keras.layers.Dense) and lay.kernel.shape[0] == 4)
    layers = {r.layer for r in part.sensitivity}
    assert {conv, on_extra} <= layers, layers  # ops fed by the image and by the extra vector are ranked
    first, chosen = part.steps[0], part.steps[part.chosen]
    assert not first.within_budget and not first.out_of_int8  # plain int8 misses the regression head's budget
    assert part.met and chosen.within_budget and len(chosen.out_of_int8) >= 1
    assert {b.name: b.ok for b in res.report.budgets}["min_snr_db (reg)"] is True
    acc = res.report.optimized.accuracy
    assert acc is not None and [o.name for o in acc.outputs] == ["cls", "reg"]

