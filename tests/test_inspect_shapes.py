"""`inspect --shape`: MACs of a model with symbolic input dims counted for the given size, or flagged as a lower bound."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeopt.cli.app import app


def _model(path):
    """x [N, 3, H, W] -> Conv(4, 3x3, pad 1) -> y; plus a fixed-size side input s [1, 2]."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                           helper.make_node("Relu", ["s"], ["t"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"]),
                           helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"]),
                           helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 2])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def inspect(*args):
    return CliRunner().invoke(app, ["inspect", *[str(a) for a in args], "--json"], catch_exceptions=False)


def test_macs_for_the_given_shape(tmp_path) -> None:
    res = inspect(_model(tmp_path / "m.onnx"), "--shape", "x=8x3x64x48")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["macs"] == 64 * 48 * 4 * 27  # per sample: the batch of 8 is not counted
    assert d["inputs"][0]["shape"] == [8, 3, 64, 48] and d["layers"][0]["output_shape"] == [8, 4, 64, 48]
    assert "MACs for input shape x=8x3x64x48" in d["notes"]
    assert not any("lower bound" in n for n in d["notes"])


def test_symbolic_dims_are_never_silently_one(tmp_path) -> None:
    d = json.loads(inspect(_model(tmp_path / "m.onnx")).stdout)
    assert d["macs"] == 4 * 27  # H = W = 1
    assert any("MACs count symbolic dimensions as 1 (x=[?, 3, ?, ?])" in n and "lower bound" in n for n in d["notes"])


def test_bad_shape_is_exit_2(tmp_path) -> None:
    path = _model(tmp_path / "m.onnx")
    for spec, needle in (("z=1x3x8x8", "does not have (inputs: x, s)"), ("s=1x3", "fixed dimension 1 of 2"),
                         ("1x3x8x8", "single-input models")):
        res = inspect(path, "--shape", spec)
        assert res.exit_code == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output


def test_the_shape_hint_uses_the_models_own_input_names_and_rank(tmp_path) -> None:
    """An audio model [N, T] and two symbolic inputs: the hint is `--shape waveform=1x?`, never NAME=1x3x640x640."""
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["frames", "w"], ["y"]), helper.make_node("Relu", ["waveform"], ["r"])],
                          "audio", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N", "T"]),
                                    helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", "F", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "F", 4]),
                           helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", "T"])], [w])
    path = tmp_path / "audio.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    d = json.loads(inspect(path).stdout)
    note = next(n for n in d["notes"] if "lower bound" in n)
    assert "give --shape waveform=1x? --shape frames=1x?x8 (each ? its real size) for the real count" in note
    assert "640" not in note
    from edgeopt.runtime.shapes import shape_hint

    assert shape_hint([("image", (-1, 3, 224, 224))]) == "--shape image=1x3x224x224"
    assert shape_hint([("sr", ())]) == "--shape sr=scalar"
