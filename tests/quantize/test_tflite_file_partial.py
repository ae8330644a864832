"""Accuracy control ([partial]) and `inspect --sensitivity` on the .tflite path: an ONNX model converted by onnx2tf
and a float .tflite, quantized by ai-edge-quantizer with ops kept float, scored in LiteRT; all real, no TensorFlow.

The model: a digits MLP written as ONNX with numpy weights. `fragile` (Gemm 48 -> 32) has a weight of 1000 in
every output column on input unit 0, which the layer before keeps at exactly 0 (a dead ReLU). In float the outlier
costs nothing; in int8 every channel's scale becomes 1000/127 and the other weights round to 0: plain int8 destroys
that layer alone, and keeping it float restores the accuracy.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.quantize.test_partial_fragile import digits_data

pytestmark = pytest.mark.onnx2tf

OUTLIER = 1000.0


def fragile_onnx(path: Path) -> Path:
    xtr, ytr, _, _ = digits_data()
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(0, 0.4, (64, 48)), rng.normal(0.1, 0.1, 48)
    w1[:, 0], b1[0] = 0.0, -1.0  # unit 0 is dead: relu(-1) = 0 for every input
    w2, b2 = rng.normal(0, 0.3, (48, 32)), rng.normal(0.1, 0.1, 32)
    w2[0, :] = OUTLIER
    h2 = np.maximum(np.maximum(xtr @ w1 + b1, 0) @ w2 + b2, 0)
    a = np.c_[h2, np.ones(len(h2))]
    w3 = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ np.eye(10)[ytr])  # ridge readout
    inits = [numpy_helper.from_array(v.astype(np.float32), n)
             for n, v in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("w3", w3[:-1] * 4), ("b3", w3[-1] * 4))]
    nodes = [helper.make_node("Gemm", ["pixels", "w1", "b1"], ["h1"], name="hidden"),
             helper.make_node("Relu", ["h1"], ["r1"], name="hidden_relu"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="fragile"),
             helper.make_node("Relu", ["h2"], ["r2"], name="fragile_relu"),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["logits"], name="readout")]
    graph = helper.make_graph(nodes, "fragile_mlp", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgeopt.convert.registry import converter_for
    from edgeopt.profiles.schema import OutputFormat

    d = tmp_path_factory.mktemp("tflite_partial")
    xtr, _, xev, yev = digits_data()
    np.savez(d / "calib.npz", x=xtr[:200])
    np.savez(d / "eval.npz", x=xev, y=yev)
    model = fragile_onnx(d / "fragile.onnx")
    conv = converter_for(OutputFormat.TFLITE)
    assert conv.onnx_to_float is not None
    conv.onnx_to_float(model, d / "fragile.tflite", None, {})  # onnx2tf from ~/.cache/edgeopt
    return {"onnx": model, "tflite": d / "fragile.tflite", "calib": d / "calib.npz", "eval": d / "eval.npz"}


def _build(cli, files: dict[str, Path], model: Path, out: Path, target: str = "mobile-cpu"):
    t0 = time.perf_counter()
    r = cli("build", model, "--target", target, "--calib", files["calib"], "--eval", files["eval"], "--out", out,
            "--no-bench")
    return r, time.perf_counter() - t0


def _fragile_op(tflite: Path) -> str:
    """The label of the FULLY_CONNECTED that reads the hidden layer (the second of three)."""
    from edgeopt.analysis.tflite_graph import read_tflite

    fcs = [op for op in read_tflite(tflite).main.operators if op.op == "FULLY_CONNECTED"]
    assert len(fcs) == 3, [op.op for op in read_tflite(tflite).main.operators]
    return f"FULLY_CONNECTED#{fcs[1].index}"


def test_onnx_to_tflite_build_moves_the_fragile_op_to_float(cli, files, tmp_path: Path) -> None:
    before = files["onnx"].read_bytes()
    r, seconds = _build(cli, files, files["onnx"], tmp_path / "out")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    p = rep["stages"]["partial"]
    assert p["backend"] == "tflite-file" and p["met"] is True
    first, chosen = p["steps"][0], p["steps"][p["chosen"]]
    assert first["scheme"] == "int8" and first["out_of_int8"] == [] and first["accuracy_drop"] > 20, first
    assert chosen["scheme"] == "int8+float" and chosen["within_budget"] and chosen["accuracy_drop"] <= 1.0
    fragile = _fragile_op(tmp_path / "out" / "fragile.float.tflite")
    assert chosen["layers"] == [fragile], (chosen, p["sensitivity"])  # the one op moved, named
    ranked = sorted(p["sensitivity"], key=lambda s: s["snr_db"])
    assert ranked[0]["layer"] == fragile and ranked[0]["snr_db"] < 10 < ranked[1]["snr_db"]
    opt = rep["optimized"]
    assert opt["artifact"]["scheme"] == "int8+float" and opt["artifact"]["bytes"] == chosen["size_bytes"]
    assert opt["accuracy"]["reference"] == "onnx float (onnxruntime)" and opt["accuracy"]["drop"] <= 1.0
    assert rep["ok"] is True and files["onnx"].read_bytes() == before
    assert rep["stages"]["conversion"]["quantizer"].startswith("ai-edge-quantizer ")
    assert not any("not available" in n for n in rep["notes"])
    # the artifact: that FULLY_CONNECTED float between DEQUANTIZE and QUANTIZE, the other two int8
    from edgeopt.analysis.tflite_graph import read_tflite

    g = read_tflite(tmp_path / "out" / "fragile.tflite")
    fc_out = [g.main.tensors[op.outputs[0]].dtype for op in g.main.operators if op.op == "FULLY_CONNECTED"]
    assert fc_out == ["int8", "float32", "int8"], fc_out
    print(f"ONNX->TFLite [partial] build {seconds:.1f} s; drop {first['accuracy_drop']:.1f} -> "
          f"{chosen['accuracy_drop']:.2f} points, {first['size_bytes']} -> {chosen['size_bytes']} bytes")


def test_float_tflite_build_runs_accuracy_control_and_keep_float(cli, files, tmp_path: Path) -> None:
    """A float .tflite input: the same loop; keep_float matches an op label ("OP#index") of the .tflite."""
    keep = _fragile_op(files["tflite"])
    profile = tmp_path / "keep.toml"
    profile.write_text(f'extends = "mobile-cpu"\ndescription = "keep float test"\n\n[partial]\n'
                       f'fallbacks = ["float"]\nkeep_float = ["^{keep}$"]\n')
    r, seconds = _build(cli, files, files["tflite"], tmp_path / "out", str(profile))
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    p = rep["stages"]["partial"]
    assert p["backend"] == "tflite-file" and p["met"] is True and len(p["steps"]) == 1  # plain int8 was over budget
    step = p["steps"][0]
    assert step["scheme"] == "int8+float" and step["layers"] == [keep] and step["accuracy_drop"] <= 1.0
    assert rep["optimized"]["accuracy"]["drop"] <= 1.0 and rep["ok"] is True
    print(f"float .tflite [partial] build {seconds:.1f} s")


def test_inspect_sensitivity_on_a_float_tflite_ranks_every_op(cli, files) -> None:
    t0 = time.perf_counter()
    r = cli("inspect", files["tflite"], "--sensitivity", "--calib", files["calib"], "--json")
    seconds = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    rows = out["layers"]
    assert [row["op_type"] for row in rows].count("FULLY_CONNECTED") == 3, rows
    assert {row["op_type"] for row in rows} <= {"FULLY_CONNECTED", "RELU"}  # onnx2tf may leave a Relu unfused
    assert all(math.isfinite(row["snr_db"]) and math.isfinite(row["rmse"]) for row in rows)
    fragile = _fragile_op(files["tflite"])
    worst = min(rows, key=lambda row: row["snr_db"])
    assert worst["layer"] == fragile and out["most_sensitive"][0] == worst["name"]
    assert all(row["snr_db"] > 20 for row in rows if row is not worst), rows
    assert abs(sum(row["macs_share"] for row in rows) - 1.0) < 1e-6
    print(f"inspect --sensitivity on the float .tflite {seconds:.1f} s")


def test_inspect_sensitivity_on_a_tflite_never_imports_tensorflow(files) -> None:
    """The human table, from the real CLI in a fresh interpreter that must not have imported TensorFlow."""
    import subprocess
    import sys

    code = ("import sys; from edgeopt.cli.app import app\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('TF' if 'tensorflow' in sys.modules else 'NO-TF', code)")
    r = subprocess.run([sys.executable, "-c", code, "inspect", str(files["tflite"]), "--sensitivity", "--calib",
                        str(files["calib"])], capture_output=True, text=True, timeout=120, check=False)
    assert r.stdout.strip().endswith("NO-TF 0"), r.stdout + r.stderr
    assert "int8 sensitivity" in r.stdout and _fragile_op(files["tflite"]) in r.stdout


def test_inspect_sensitivity_refuses_a_quantized_tflite(cli, files, tmp_path: Path) -> None:
    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.tflite_file import quantize_tflite_file

    calib = np.load(files["calib"])["x"]
    quantize_tflite_file(files["tflite"], tmp_path / "int8.tflite", Scheme.INT8, calib)
    r = cli("inspect", tmp_path / "int8.tflite", "--sensitivity", "--calib", files["calib"])
    assert r.exit_code == 2 and "already quantized" in r.output and "Traceback" not in r.output, r.output


def test_mcu_int16x8_rung_on_a_float_tflite_reports_the_shortfall(cli, files, tmp_path: Path) -> None:
    """embedded-mcu (no float on an MCU): int8, then int16x8 through ai-edge-quantizer, each checked on host TFLite
    Micro; int16x8 keeps int8 weights, so the outlier still wins: the best step ships, exit 3 with the shortfall."""
    profile = tmp_path / "mcu.toml"
    profile.write_text('extends = "embedded-mcu"\ndescription = "int16x8 rung"\n\n[budgets]\nmax_accuracy_drop = 1.0\n'
                       '\n[partial]\nfallbacks = ["int16x8"]\n\n[mcu]\nallow_int16x8 = true\n')
    r, seconds = _build(cli, files, files["tflite"], tmp_path / "out", str(profile))
    assert r.exit_code == 3, r.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    p = rep["stages"]["partial"]
    assert [s["scheme"] for s in p["steps"]] == ["int8", "int16x8"] and p["met"] is False
    assert p["steps"][1]["layers"] == ["all"] and all(s["accuracy_drop"] > 20 for s in p["steps"])
    assert any(n.startswith("accuracy control ([partial]) did not meet max_accuracy_drop 1 points: 2 variant(s) tried")
               for n in rep["notes"]), rep["notes"]
    failed = [b["name"] for b in rep["budgets"] if b["ok"] is False]
    assert "max_accuracy_drop" in failed and rep["ok"] is False
    assert rep["stages"]["mcu"]["bit_exact"] is True  # the shipped variant: TFLite Micro = LiteRT
    print(f"embedded-mcu int16x8 rung {seconds:.1f} s")
