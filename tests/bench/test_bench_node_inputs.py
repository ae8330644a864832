"""`bench --input` on ONNX backend node-test models (benchmarks/onnx_node_suite.py), built here with onnx.helper.

Their inputs are whole tensors, not batches of samples: a fixed first dimension of 3 or a 1-D input of 5 is fed whole,
0-d inputs as they are, and the crash probe runs the user's data itself (Gather indices drawn at random go out
of range; the test's own indices do not). Real onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgeopt.cli.app import app

FAST = ("--runs", "2", "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0")
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def node_model(path: Path, node: onnx.NodeProto, inputs: list[tuple[str, int, list]], outputs: list[tuple[str, int, list]],
               opset: int = 13) -> Path:
    g = helper.make_graph([node], "node", [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), str(path))
    return path


def bench(*args: object):
    return CliRunner().invoke(app, ["bench", *[str(a) for a in args], *FAST, "--json"], catch_exceptions=False)


def test_fixed_leading_dimensions_are_fed_whole(tmp_path) -> None:
    """test_add_bcast: x 3x4x5 + y 5; the data used to be cut to its first row (1x4x5, 1) and fail."""
    model = node_model(tmp_path / "add.onnx", helper.make_node("Add", ["x", "y"], ["z"]),
                       [("x", F, [3, 4, 5]), ("y", F, [5])], [("z", F, [3, 4, 5])])
    np.savez(tmp_path / "in.npz", x=np.ones((3, 4, 5), np.float32), y=np.arange(5, dtype=np.float32))
    res = bench(model, "--input", tmp_path / "in.npz")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["input_shapes"] == "x=3x4x5, y=5"
    np.savez(tmp_path / "short.npz", x=np.ones((2, 4, 5), np.float32), y=np.arange(5, dtype=np.float32))
    short = bench(model, "--input", tmp_path / "short.npz")
    err = short.stderr.strip()
    assert short.exit_code == 2 and len(err.splitlines()) == 1 and "input 'x' expects shape [3, 4, 5]" in err, short.output


def test_scalar_inputs_are_fed_as_given(tmp_path) -> None:
    """test_range_int32_type_negative_delta: three 0-d inputs (an IndexError, exit 1, before)."""
    model = node_model(tmp_path / "range.onnx", helper.make_node("Range", ["start", "limit", "delta"], ["out"]),
                       [("start", I64, []), ("limit", I64, []), ("delta", I64, [])], [("out", I64, ["n"])], opset=11)
    np.savez(tmp_path / "in.npz", start=np.array(10), limit=np.array(6), delta=np.array(-3))
    res = bench(model, "--input", tmp_path / "in.npz")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["input_shapes"] == "start=scalar, limit=scalar, delta=scalar"


def test_probe_runs_the_users_data(tmp_path) -> None:
    """test_gather_2d_indices: random indices in 0..3 leave the axis of 3; the test's own indices run."""
    model = node_model(tmp_path / "gather.onnx", helper.make_node("Gather", ["data", "indices"], ["y"], axis=1),
                       [("data", F, [3, 3]), ("indices", I64, [1, 2])], [("y", F, [3, 1, 2])])
    random = bench(model)
    assert random.exit_code == 2 and "indices element out of data bounds" in random.stderr, random.output
    np.savez(tmp_path / "in.npz", data=np.ones((3, 3), np.float32), indices=np.array([[0, 2]]))
    res = bench(model, "--input", tmp_path / "in.npz")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["input_shapes"] == "data=3x3, indices=1x2"


def test_dynamic_batch_and_spatial_input_reports_the_datas_shape(tmp_path) -> None:
    """An [N, 3, H, W] model at 1x3x224x224 from --input: the JSON says what was fed."""
    w = onnx.numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2])], "g",
                          [helper.make_tensor_value_info("x", F, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", F, ["N", 4, "H2", "W2"])], [w])
    model = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model))
    np.savez(tmp_path / "in.npz", x=np.ones((1, 3, 224, 224), np.float32))
    res = bench(model, "--input", tmp_path / "in.npz")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["results"][0]
    assert row["input_shapes"] == "x=1x3x224x224" and row["inputs"] == str(tmp_path / "in.npz")
    assert row["latency"]["p50"] > 0


def test_fixed_empty_dimension_takes_empty_data(tmp_path) -> None:
    """test_..._empty cases: a first dimension fixed at 0 is an empty tensor, not a batch with no samples."""
    model = node_model(tmp_path / "id.onnx", helper.make_node("Identity", ["x"], ["y"]), [("x", F, [0, 3])],
                       [("y", F, [0, 3])])
    np.savez(tmp_path / "in.npz", x=np.zeros((0, 3), np.float32))
    res = bench(model, "--input", tmp_path / "in.npz")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["input_shapes"] == "x=0x3"
