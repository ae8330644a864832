"""Issue 23 item 9: Keras models that failed to load or export now build, or fail in one line (exit 2).

- exact GELU (`gelu(approximate=False)`, ConvNeXt's) is exported by tf2onnx as TensorFlow's `Erfc`, not an ONNX
  op: main failed with exit 1 ("No Op registered for Erfc"); the export rewrites it as 1 - Erf;
- an op the export check rejects (keras.ops.erfinv -> `Erfinv`) was exit 1; it is exit 2 naming the op;
- a Keras-2 style .h5 whose optimizer config says `lr` failed to load (exit 2, "Argument(s) not recognized");
  it loads with compile=False;
- a SavedModel TensorFlow cannot load was "cannot load the Keras model ...; the file may be corrupt"; it says
  TensorFlow cannot load it, and TensorFlow's reason.
Real Keras, tf2onnx, onnx.checker, onnxruntime and edgeopt's CLI.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeopt.convert.onnx_rewrite import rewrite_non_onnx_ops

pytestmark = pytest.mark.tensorflow

keras = pytest.importorskip("keras")


def _data(tmp_path: Path, stem: str, n: int = 32, width: int = 16) -> Path:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / f"{stem}.calib.npz", x=rng.standard_normal((n, width)).astype(np.float32))
    np.savez(tmp_path / f"{stem}.eval.npz", x=rng.standard_normal((n, width)).astype(np.float32))
    return tmp_path / f"{stem}.calib.npz"


def _mlp(activation=None) -> keras.Model:  # noqa: ANN001
    keras.utils.set_random_seed(0)  # untrained: its int8 fate (plain, or layers kept float) must not vary by run
    inp = keras.Input((16,), name="x")
    h = keras.layers.Dense(32)(inp)
    h = activation(h) if activation is not None else keras.layers.ReLU()(h)
    return keras.Model(inp, keras.layers.Dense(4, activation="softmax")(h))


def test_erfc_is_rewritten_as_one_minus_erf_exactly() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [5])
    graph = helper.make_graph([helper.make_node("Erfc", ["x"], ["y"], name="erfc")], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(onnx.checker.ValidationError, match="Erfc"):
        onnx.checker.check_model(proto)
    assert rewrite_non_onnx_ops(proto) == {"Erfc": 1}
    onnx.checker.check_model(proto)
    assert [n.op_type for n in proto.graph.node] == ["Erf", "Sub"]
    values = np.array([-3.0, -0.5, 0.0, 0.7, 2.5], np.float32)
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": values})[0]
    np.testing.assert_allclose(got, [math.erfc(v) for v in values], rtol=1e-6, atol=1e-6)


def test_exact_gelu_exports_as_onnx_and_builds_for_edge_server(cli, tmp_path) -> None:
    from edgeopt.convert.onnx import keras_to_onnx

    model = _mlp(lambda h: keras.activations.gelu(h, approximate=False))
    proto = onnx.load_from_string(keras_to_onnx(model, 17))
    ops = [n.op_type for n in proto.graph.node]
    assert "Erfc" not in ops and "Erf" in ops
    x = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {proto.graph.input[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    model.save(tmp_path / "gelu.keras")
    _data(tmp_path, "gelu")
    res = cli("build", tmp_path / "gelu.keras", "--target", "edge-server", "--out", tmp_path / "out", "--no-bench",
              "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    # against Keras float: 42 dB and 23 dB measured on unseeded weights, before the seed above
    assert report["optimized"]["accuracy"]["snr_db"] > 15, report["optimized"]["accuracy"]
    built = {n.op_type for n in onnx.load(str(tmp_path / "out" / "gelu.onnx")).graph.node}
    scheme = report["optimized"]["artifact"]["scheme"]
    # plain int8, or ([partial] on edge-server) int8 with layers kept float until the budgets hold
    assert "Erf" in built and scheme in ("int8", "int8+float"), (scheme, built)
    assert scheme != "int8" or "QuantizeLinear" in built


def test_an_op_onnx_lacks_is_exit_2_naming_it(cli, tmp_path) -> None:
    model = _mlp(lambda h: keras.ops.erfinv(keras.ops.sigmoid(h) * 0.5))
    model.save(tmp_path / "erfinv.keras")
    calib = _data(tmp_path, "erfinv")
    res = cli("build", tmp_path / "erfinv.keras", "--target", "edge-server", "--out", tmp_path / "out", "--no-bench",
              "--calib", calib)
    assert res.exit_code == 2, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the Keras model uses an operation tf2onnx exported as 'Erfinv' (node "), line
    assert "No Op registered for Erfinv" in line and "replace that operation" in line
    assert "Traceback" not in res.output


def test_keras2_h5_with_an_lr_optimizer_config_builds(cli, tmp_path) -> None:
    import h5py

    model = _mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path / "k2.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:  # what Keras 2 wrote: `lr`, `decay`
        config = json.loads(f.attrs["training_config"])
        config["optimizer_config"] = {"class_name": "Adam", "config": {
            "name": "Adam", "lr": 0.001, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
            "amsgrad": False}}
        f.attrs["training_config"] = json.dumps(config).encode()
    with pytest.raises(Exception, match="Argument"):  # what loading it with compile=True (main) does
        keras.saving.load_model(path, compile=True)
    _data(tmp_path, "k2")
    before = path.read_bytes()
    res = cli("build", path, "--target", "edge-server", "--out", tmp_path / "out", "--no-bench", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["optimized"]["accuracy"]["snr_db"] > 25
    assert path.read_bytes() == before


def test_a_savedmodel_tensorflow_cannot_load_says_so_with_its_reason(cli, tmp_path) -> None:
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.ones((16, 4)))
    module.serve = tf.function(lambda x: {"y": tf.matmul(x, module.w)},
                               input_signature=[tf.TensorSpec((None, 16), tf.float32)])
    good, broken = tmp_path / "good", tmp_path / "broken"
    tf.saved_model.save(module, str(good), signatures={"serving_default": module.serve})
    shutil.copytree(good, broken)
    (broken / "variables" / "variables.index").unlink()
    calib = _data(tmp_path, "sm")
    res = cli("build", broken, "--target", "edge-server", "--out", tmp_path / "out", "--no-bench", "--calib", calib)
    assert res.exit_code == 2, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {broken}: TensorFlow cannot load the SavedModel (FileNotFoundError: "), line
    assert "Failed to find any matching files" in line and "may be corrupt" not in line
    assert "re-save it with tf.saved_model.save" in line
