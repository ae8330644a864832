"""Accuracy control ([partial]) on an ONNX model with two inputs: the sensitivity ranking and every variant are
fed both inputs by name (it was skipped with a note: "handles single-input models only"). Real onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeopt.cli.app import app


def two_input_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w = {"w1": rng.standard_normal((16, 32)), "w2": rng.standard_normal((8, 32)) * 4, "w3": rng.standard_normal((32, 4))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm_x"),
             helper.make_node("MatMul", ["z", "w2"], ["b"], name="mm_z"),
             helper.make_node("Add", ["a", "b"], ["c"], name="add"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w3"], ["out"], name="head")]
    g = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16]),
                                         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_accuracy_control_feeds_both_inputs(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "two.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((64, 16)).astype(np.float32),
             z=rng.standard_normal((64, 8)).astype(np.float32))
    prof = tmp_path / "snr.toml"
    prof.write_text('extends = "edge-server"\nname = "snr"\n[budgets]\nmin_snr_db = 60.0\n')
    res = CliRunner().invoke(app, ["build", str(model), "--target", str(prof), "--calib", str(tmp_path / "d.npz"),
                                   "--eval", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o"), "--no-bench"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert not any("accuracy control ([partial]) skipped" in n for n in rep["notes"]), rep["notes"]
    part = rep["stages"]["partial"]
    first, chosen = part["steps"][0], part["steps"][part["chosen"]]
    assert first["metric"] == "snr" and first["figure"] < 60 and not first["within_budget"]  # plain int8 misses it
    assert part["met"] and chosen["out_of_int8"] and chosen["figure"] >= 60
    names = {r["name"].split("/")[0] for r in part["sensitivity"]}  # onnxruntime fuses mm_z with the Add
    assert names >= {"mm_x", "mm_z", "head"}  # every MatMul ranked, the one on z too
    assert rep["optimized"]["accuracy"]["snr_db"] >= 60


def test_inspect_sensitivity_of_a_two_input_onnx_model(tmp_path: Path) -> None:
    """`inspect --sensitivity` ranks every layer of a model with two inputs (it refused: "single-input models")."""
    model = two_input_model(tmp_path / "two.onnx")
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "c.npz", x=rng.standard_normal((32, 16)).astype(np.float32),
             z=rng.standard_normal((32, 8)).astype(np.float32))
    res = CliRunner().invoke(app, ["inspect", str(model), "--sensitivity", "--calib", str(tmp_path / "c.npz"), "--json"])
    assert res.exit_code == 0, res.output
    layers = json.loads(res.stdout)["layers"]
    assert {r["name"].split("/")[0] for r in layers} == {"mm_x", "mm_z", "head"}
    assert all(20 < r["snr_db"] < 80 and r["macs_share"] > 0 for r in layers)
