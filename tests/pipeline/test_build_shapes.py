"""`edgeopt build` of an ONNX model with symbolic spatial dims: the latency stage runs at the data's size.

The model cannot run at 1x1 (3x3 convolution, no padding), so a build that fed 1s would be refused.
Real onnxruntime quantization, probe and benchmark.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QUICK = "\n[benchmark]\nwarmup_runs = 1\nwarmup_seconds = 0.0\nruns = 5\nmin_seconds = 0.05\n"


def test_symbolic_dims_take_the_calibration_data_size(cli, tmp_path) -> None:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
                           helper.make_node("Relu", ["c"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H2", "W2"])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(1).random((16, 3, 20, 20), dtype=np.float32))
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "edge-server"\nname = "p"\n[budgets]\nmax_latency_ratio = 1000.0\n' + QUICK)
    res = cli("build", tmp_path / "m.onnx", "--target", prof, "--out", tmp_path / "out", "--calib", tmp_path / "c.npz",
              "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert "latency measured at input shape 1x3x20x20 (from the calibration data; the model's input is " \
           "['?', 3, '?', '?'])" in rep["notes"]
    assert rep["baseline"]["latency_ms"]["p50"] > 0 and rep["optimized"]["latency_ms"]["p50"] > 0
    assert rep["stages"]["onnx_activations"]["measured"] is True
    assert rep["input"]["macs"] == 18 * 18 * 4 * 27  # per sample, at 20x20 (valid 3x3 convolution)
    assert "input MACs are for input shape 1x3x20x20 (one sample of the calibration data)" in rep["notes"]
