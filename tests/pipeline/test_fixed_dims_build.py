"""`build --target edge-server` on ONNX models whose inputs are whole tensors, not batches of samples (the node-test
models of benchmarks/onnx_node_suite.py, built here with onnx.helper): a fixed first dimension N takes N rows per
sample, a 0-d input one scalar, and a 0-d output is one row. Calibration, accuracy and sensitivity used to feed
one row at a time (exit 1: "Got: 1 Expected: 3"). Real onnxruntime quantization and evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgeopt.cli.app import app

F = TensorProto.FLOAT


def node_model(path: Path, nodes: list[onnx.NodeProto], inputs: list[tuple], outputs: list[tuple]) -> Path:
    g = helper.make_graph(nodes, "node", [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def build(tmp: Path, model: Path, data: Path, name: str):
    res = CliRunner().invoke(app, ["build", str(model), "--target", "edge-server", "--calib", str(data), "--eval",
                                   str(data), "--out", str(tmp / name), "--no-bench", "--json"])
    return res, (json.loads((tmp / name / "report.json").read_text()) if res.exit_code in (0, 3) else None)


def test_fixed_first_dimension_is_one_sample_of_n_rows(tmp_path) -> None:
    model = node_model(tmp_path / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])], [("x", F, [3, 4, 5])],
                       [("y", F, [3, 4, 5])])
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "one.npz", x=rng.standard_normal((3, 4, 5)).astype(np.float32))
    res, rep = build(tmp_path, model, tmp_path / "one.npz", "one")
    assert res.exit_code == 0, res.output
    assert rep["calibration"]["samples"] == 1 and rep["optimized"]["accuracy"]["snr_db"] > 20
    # (k, 3, 4, 5): k samples of 3 rows each
    np.savez(tmp_path / "six.npz", x=rng.standard_normal((6, 3, 4, 5)).astype(np.float32))
    res, rep = build(tmp_path, model, tmp_path / "six.npz", "six")
    assert res.exit_code == 0, res.output
    assert rep["calibration"]["samples"] == 6
    np.savez(tmp_path / "odd.npz", x=rng.standard_normal((7, 4, 5)).astype(np.float32))
    res, _ = build(tmp_path, model, tmp_path / "odd.npz", "odd")
    err = res.stderr.strip()
    assert res.exit_code == 2 and len(err.splitlines()) == 1, res.output
    assert "has a fixed first dimension 3" in err and "7 rows are not a multiple" in err, err
    assert not (tmp_path / "odd").exists()


def test_inputs_of_different_fixed_sizes_and_an_input_named_y(tmp_path) -> None:
    """test_gemm_alpha (a 3x5, b 5x4, c 1x4: "different sample counts" before) and test_add (inputs x and y: the
    array y was taken as labels, "no array for input y")."""
    gemm = node_model(tmp_path / "gemm.onnx", [helper.make_node("Gemm", ["a", "b", "c"], ["o"], alpha=0.5)],
                      [("a", F, [3, 5]), ("b", F, [5, 4]), ("c", F, [1, 4])], [("o", F, [3, 4])])
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "g.npz", a=rng.random((3, 5), np.float32), b=rng.random((5, 4), np.float32),
             c=rng.random((1, 4), np.float32))
    res, rep = build(tmp_path, gemm, tmp_path / "g.npz", "gemm")
    assert res.exit_code == 0, res.output
    assert rep["calibration"]["samples"] == 1 and rep["optimized"]["accuracy"]["snr_db"] > 20
    add = node_model(tmp_path / "add.onnx", [helper.make_node("Add", ["x", "y"], ["z"])],
                     [("x", F, [3, 4, 5]), ("y", F, [3, 4, 5])], [("z", F, [3, 4, 5])])
    np.savez(tmp_path / "a.npz", x=rng.random((3, 4, 5), np.float32), y=rng.random((3, 4, 5), np.float32))
    res, rep = build(tmp_path, add, tmp_path / "a.npz", "add")
    assert res.exit_code == 0, res.output
    assert rep["optimized"]["accuracy"]["value"] is None and rep["optimized"]["accuracy"]["metric"] != "top1"  # y: an input


def test_scalar_output_of_a_1d_matmul(tmp_path) -> None:
    """test_matmul_1d_1d: a (3,) . b (3,) is 0-d (an IndexError, exit 1, before)."""
    model = node_model(tmp_path / "mm.onnx", [helper.make_node("MatMul", ["a", "b"], ["c"])],
                       [("a", F, [3]), ("b", F, [3])], [("c", F, [])])
    np.savez(tmp_path / "m.npz", a=np.array([1.0, 2.0, 3.0], np.float32), b=np.array([0.5, -1.0, 2.0], np.float32))
    res, rep = build(tmp_path, model, tmp_path / "m.npz", "mm")
    assert res.exit_code in (0, 3), res.output
    assert rep["calibration"]["samples"] == 1 and rep["optimized"]["accuracy"]["samples"] == 1


def test_the_probe_runs_the_users_data(tmp_path) -> None:
    """test_resize_upsample_scales_nearest: the scales are an input; the crash probe of every artifact fed random
    ones and refused the model ("Scale value should be greater than 0"), although the data holds valid scales."""
    model = node_model(tmp_path / "resize.onnx", [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
                       [("x", F, [1, 1, 2, 2]), ("scales", F, [4])], [("y", F, [1, 1, 4, 6])])
    np.savez(tmp_path / "r.npz", x=np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2),
             scales=np.array([1.0, 1.0, 2.0, 3.0], np.float32))
    res, rep = build(tmp_path, model, tmp_path / "r.npz", "resize")
    assert res.exit_code == 0, res.output
    assert rep["optimized"]["accuracy"]["snr_db"] > 20


def test_values_a_scan_body_reads_are_ordered_before_it() -> None:
    """onnxruntime's int8 pass left a value that a Scan body reads (LinearAttention's ScaleFactor, opset 27) after
    the Scan; the checker refused the artifact. The topological order counts what bodies read."""
    from edgeopt.quantize.onnx import _topological

    body = helper.make_graph([helper.make_node("Mul", ["s_in", "k"], ["s_out"])], "body",
                             [helper.make_tensor_value_info("s_in", F, [1])], [helper.make_tensor_value_info("s_out", F, [1])])
    nodes = [helper.make_node("Scan", ["s0"], ["s_end"], body=body, num_scan_inputs=0),
             helper.make_node("Identity", ["c"], ["k"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("s0", F, [1]), helper.make_tensor_value_info("c", F, [1])],
                          [helper.make_tensor_value_info("s_end", F, [1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(model)  # as onnxruntime's int8 pass wrote it
    onnx.checker.check_model(_topological(model))
    assert [n.op_type for n in model.graph.node] == ["Identity", "Scan"]

