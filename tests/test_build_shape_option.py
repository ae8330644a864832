"""`edgeopt build --shape`: the size of symbolic input dims for the latency stage and MACs, checked like `bench`.

A Keras model with a dynamic spatial size, built in code; real converter, LiteRT and onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow

QUICK = '[benchmark]\nruns = 10\nmin_seconds = 0.05\nwarmup_seconds = 0.01\n'


@pytest.fixture(scope="module")
def dyn(tmp_path_factory):
    """image (N, ?, ?, 3) -> conv -> global pool -> softmax(3), with 16x16 calibration data."""
    import keras

    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("dyn")
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(d / "dyn.keras")
    np.savez(d / "dyn.calib.npz", x=np.random.default_rng(0).random((8, 16, 16, 3), dtype=np.float32))
    return d


def _profile(folder: Path, budgets: str = "") -> Path:
    p = folder / "quick.toml"
    p.write_text(f'extends = "mobile-cpu"\n{QUICK}' + (f"[budgets]\n{budgets}\n" if budgets else ""))
    return p


def test_shape_sizes_latency_and_a_slow_litert_ratio_fails_the_budget(cli, dyn, tmp_path):
    """--shape is what both LiteRT artifacts are timed at (typed in the report, printed); a LiteRT build over its
    max_latency_ratio budget exits 3 with the report written (the never-slower-silently rule)."""
    out = tmp_path / "out"
    r = cli("build", dyn / "dyn.keras", "--target", _profile(tmp_path, "max_latency_ratio = 0.01"), "--calib",
            dyn / "dyn.calib.npz", "--shape", "image=1x24x24x3", "--out", out)
    assert r.exit_code == 3, r.output
    assert "budget exceeded: max_latency_ratio" in r.stderr
    rep = json.loads((out / "report.json").read_text())
    for variant in ("baseline", "optimized"):
        lat = rep[variant]["latency_ms"]
        assert [dims for _, dims in lat["input_shapes"]] == [[1, 24, 24, 3]] and lat["runtime"] == "litert"
        assert lat["cpu_ms"] > 0
    budget = next(b for b in rep["budgets"] if b["name"] == "max_latency_ratio")
    assert budget["ok"] is False and budget["actual"] == pytest.approx(rep["ratios"]["latency_p50"], rel=1e-3)
    assert rep["ok"] is False
    assert "latency measured at input shape 1x24x24x3 (from --shape; the model's input is ['?', '?', '?', 3])" \
        in rep["notes"]
    console = " ".join(r.stdout.split())
    assert "=1x24x24x3" in console and "timing: CPU time per invoke" in console
    assert "max_latency_ratio │ 0.01" in console and "FAIL" in console


def test_without_shape_one_calibration_sample_sizes_latency(cli, dyn, tmp_path):
    out = tmp_path / "out"
    r = cli("build", dyn / "dyn.keras", "--target", _profile(tmp_path), "--calib", dyn / "dyn.calib.npz",
            "--out", out, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert [d for _, d in rep["optimized"]["latency_ms"]["input_shapes"]] == [[1, 16, 16, 3]]
    assert any(n.startswith("latency measured at input shape 1x16x16x3 (from the calibration data") for n in rep["notes"])


@pytest.mark.parametrize(("spec", "needle"), [
    ("nope=1x24x24x3", "--shape names input 'nope', which the model does not have (inputs: image)"),
    ("image=1x24x24x4", "input 'image' has a fixed dimension 3 of 3 ([?, ?, ?, 3]); the shape given says 4"),
    ("1x24x24", "input 'image' has 4 dimensions [?, ?, ?, 3]; the shape given has 3 ([1, 24, 24])"),
    ("image=1xbig", "--shape 'image=1xbig': write NAME=1x3x640x640"),
])
def test_bad_shape_is_one_line_exit_2_before_any_work(cli, dyn, tmp_path, spec, needle):
    out = tmp_path / "out"
    r = cli("build", dyn / "dyn.keras", "--target", "mobile-cpu", "--calib", dyn / "dyn.calib.npz",
            "--shape", spec, "--out", out)
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]  # after the progress lines
    assert len(errors) == 1 and "Traceback" not in r.output and r.stderr.strip().endswith(errors[0])
    assert needle in errors[0], errors
    assert not out.exists()


def test_shape_is_part_of_the_build_inputs(dyn, tmp_path):
    """Another --shape is another build: the manifest's input key changes, so OUT is not "up to date"."""
    from edgeopt.pipeline.build import BuildRequest
    from edgeopt.pipeline.manifest import build_inputs, input_key
    from edgeopt.profiles import load_profile

    resolved = load_profile("mobile-cpu")
    keys = {input_key(build_inputs(BuildRequest(model=dyn / "dyn.keras", target="mobile-cpu", out=tmp_path,
                                                shapes=shapes), resolved))
            for shapes in ((), (("image", (1, 24, 24, 3)),), (("image", (1, 32, 32, 3)),))}
    assert len(keys) == 3


def _dyn_onnx(path: Path) -> Path:
    """x (N, 3, ?, ?) -> Conv 4x3x3x3 (same padding) -> Relu -> GlobalAveragePool -> Flatten, opset 13."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_onnx_shape_sizes_latency_and_macs(cli, tmp_path):
    model = _dyn_onnx(tmp_path / "dyn.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(1).random((8, 3, 16, 16), dtype=np.float32))
    prof = tmp_path / "quick-server.toml"
    prof.write_text(f'extends = "edge-server"\n{QUICK}[budgets]\nmax_latency_ratio = 100.0\n')
    r = cli("build", model, "--target", prof, "--calib", tmp_path / "calib.npz", "--shape", "x=1x3x20x20",
            "--out", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    for variant in ("baseline", "optimized"):
        assert rep[variant]["latency_ms"]["input_shapes"] == [["x", [1, 3, 20, 20]]]
    assert rep["input"]["macs"] == 20 * 20 * 4 * 3 * 3 * 3  # the conv at 20x20, not at 1x1 or 16x16
    assert "input MACs are for input shape 1x3x20x20 (from --shape)" in rep["notes"]
