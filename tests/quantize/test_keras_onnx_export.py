"""Keras -> ONNX for architectures tf2onnx leaves half-converted: Normalization constants and grouped Conv2D.

Real Keras, tf2onnx, onnxruntime: the exported graph has one data input and no TensorFlow node, its outputs
match Keras, and the model builds int8 for edge-server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.tensorflow

keras = pytest.importorskip("keras")


def _normalization_model() -> keras.Model:
    x = np.random.default_rng(0).normal(5.0, 3.0, (64, 8, 8, 3)).astype(np.float32)
    norm = keras.layers.Normalization()
    norm.adapt(x)
    inp = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(norm(inp))
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inp, keras.layers.Dense(4, activation="softmax")(y))


def _grouped_conv_model() -> keras.Model:
    inp = keras.Input((8, 8, 4))
    y = keras.layers.Conv2D(8, 3, padding="same", groups=2, activation="relu")(inp)
    y = keras.layers.Conv2D(8, 1, groups=4)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inp, keras.layers.Dense(4, activation="softmax")(y))


CASES = {"normalization": (_normalization_model, 3, 1), "grouped": (_grouped_conv_model, 4, 2)}


@pytest.mark.parametrize("case", list(CASES))
def test_export_is_plain_onnx_and_matches_keras(tmp_path: Path, case: str) -> None:
    from edgeopt.convert.onnx import keras_to_onnx

    make, channels, _ = CASES[case]
    model = make()
    proto = onnx.load_from_string(keras_to_onnx(model, 17))
    onnx.checker.check_model(proto)
    assert [v.name for v in proto.graph.input] == ["input"]  # the normalization constants are initializers
    ops = {n.op_type for n in proto.graph.node}
    assert "StatefulPartitionedCall" not in ops and "PartitionedCall" not in ops
    if case == "grouped":
        groups = sorted(a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group")
        assert groups == [2, 4]
    x = np.random.default_rng(1).normal(5.0, 3.0, (6, 8, 8, channels)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_builds_int8_for_edge_server(cli, tmp_path: Path, case: str) -> None:
    make, channels, _ = CASES[case]
    make().save(tmp_path / "m.keras")
    x = np.random.default_rng(2).normal(5.0, 3.0, (32, 8, 8, channels)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    res = cli("build", tmp_path / "m.keras", "--target", "edge-server", "--out", tmp_path / "out", "--no-bench",
              "--calib", tmp_path / "calib.npz", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["optimized"]["artifact"]["scheme"] == "int8"
    q = onnx.load(str(tmp_path / "out" / "m.onnx"))
    assert [v.name for v in q.graph.input] == ["input"]
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) >= 2


def test_export_failure_message_keeps_its_cause() -> None:
    from edgeopt.errors import cause_of

    long = RuntimeError("Traceback noise " * 60 + "\nNOT_IMPLEMENTED : Could not find an implementation for Foo(1)")
    text = cause_of(long)
    assert len(text) <= 600 and text.startswith("Traceback noise")
    assert text.endswith("Could not find an implementation for Foo(1)") and " ... " in text
    assert cause_of(RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : x")) == "NOT_IMPLEMENTED : x"


def test_exported_graph_that_onnxruntime_cannot_run_is_refused_with_the_node(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from edgeopt.convert.onnx_check import Origin, check_onnx
    from edgeopt.errors import ConversionError

    g = helper.make_graph([helper.make_node("StatefulPartitionedCall", ["input"], ["output"], domain="tf")], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("tf", 1)], ir_version=8)
    onnx.save(m, str(tmp_path / "x.onnx"))
    with pytest.raises(ConversionError, match="exported from the Keras model .*StatefulPartitionedCall"):
        check_onnx(tmp_path / "x.onnx", Origin.EXPORTED)
