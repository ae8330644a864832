"""Symbolic input dimensions sized by --shape or by the --input data, in the probe and the benchmark.

The model (built with onnx.helper) cannot run at 1x1: its 3x3 convolution has no padding. Real onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeopt.cli.app import app

FAST = ("--runs", "5", "--min-seconds", "0.05", "--warmup-seconds", "0.01")


def dynamic_conv(path: Path) -> Path:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, "H2", "W2"])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def bench(*args: object):
    return CliRunner().invoke(app, ["bench", *[str(a) for a in args], *FAST], catch_exceptions=False)


def test_shape_flag_sizes_the_probe_and_the_random_inputs(tmp_path) -> None:
    model = dynamic_conv(tmp_path / "m.onnx")
    guessed = bench(model)  # at 1x1 the convolution cannot run
    assert guessed.exit_code == 2 and "symbolic dimensions fed as 1 (x=1x3x1x1)" in guessed.stderr
    assert "--shape x=1x3x?x? (each ? its real size)" in guessed.stderr  # its own name and rank
    res = bench(model, "--shape", "x=1x3x32x32", "--json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["results"]
    assert row["inputs"] == "random (seed 0)" and row["input_shapes"] == "x=1x3x32x32"
    unnamed = bench(model, "--shape", "1x3x16x24", "--json")
    assert unnamed.exit_code == 0 and json.loads(unnamed.stdout)["results"][0]["input_shapes"] == "x=1x3x16x24"


def test_input_data_sizes_the_probe(tmp_path) -> None:
    model = dynamic_conv(tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", x=np.ones((2, 3, 20, 20), np.float32))
    res = bench(model, "--input", tmp_path / "in.npz", "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["results"][0]
    assert row["inputs"] == str(tmp_path / "in.npz") and row["input_shapes"] == "x=1x3x20x20"


def test_bad_shapes_are_one_line_exit_2(tmp_path) -> None:
    model = dynamic_conv(tmp_path / "m.onnx")
    for spec, needle in (("y=1x3x32x32", "names input 'y', which the model does not have (inputs: x)"),
                         ("x=1x4x32x32", "fixed dimension 1 of 3"),
                         ("x=1x3x32", "has 4 dimensions"),
                         ("x=1x3xAx32", "write NAME=1x3x640x640")):
        res = bench(model, "--shape", spec)
        err = res.stderr.strip()
        assert res.exit_code == 2 and len(err.splitlines()) == 1 and needle in err, (spec, res.output)


def test_human_output_prints_the_shapes_fed(tmp_path) -> None:
    res = bench(dynamic_conv(tmp_path / "m.onnx"), "--shape", "x=1x3x32x32")
    assert res.exit_code == 0 and "inputs of m.onnx: x=1x3x32x32" in res.output, res.output
