"""Issue 23 item 7: an ONNX model that is already quantized (QDQ, QOperator, ConvInteger/MatMulInteger,
com.microsoft quantized ops) is recognised when it is read: `inspect` names the kind and the count of its
quantized nodes, `build` refuses it in one line (exit 2) before any quantizer runs. On main both built (exit 0,
quantizing the quantized graph again). Models are made in the test: QDQ and QOperator by onnxruntime's own
quantize_static from a tiny float CNN, ConvInteger with onnx.helper."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.load.quantized_onnx import QuantizedKind, quantized_graph

from .old_onnx import calibration, cnn


class _Reader:
    def __init__(self, x: np.ndarray) -> None:
        self._rows = iter(x[i:i + 1] for i in range(len(x)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(({"x": r} for r in self._rows), None)


def _ort_quantized(tmp_path: Path, fmt: str) -> Path:
    from onnxruntime.quantization import QuantFormat, quantize_static

    src = cnn(tmp_path / "float.onnx", opset=13, ir_version=7)
    dst = tmp_path / f"{fmt}.onnx"
    x = np.load(calibration(tmp_path / "c.npz"))["x"][:4]
    quantize_static(str(src), str(dst), _Reader(x), quant_format=getattr(QuantFormat, fmt))
    return dst


def _conv_integer(path: Path) -> Path:
    """x [N,3,8,8] float -> DynamicQuantizeLinear -> ConvInteger(uint8 weights) -> Cast -> Mul(scales) -> y."""
    rng = np.random.default_rng(0)
    w = rng.integers(0, 255, (4, 3, 3, 3), dtype=np.uint8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dql"),
             helper.make_node("ConvInteger", ["xq", "w", "xz", "wz"], ["acc"], name="convint"),
             helper.make_node("Cast", ["acc"], ["accf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xs", "ws"], ["s"], name="scale"),
             helper.make_node("Mul", ["accf", "s"], ["y"], name="rescale")]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(128, np.uint8), "wz"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws")]
    g = helper.make_graph(nodes, "convint", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # a valid model onnxruntime runs
    return path


def test_kinds_by_op_names() -> None:
    assert quantized_graph(["Conv", "Relu", "Gemm", "com.microsoft:FusedConv"]) is None
    lstm = quantized_graph(["ConvInteger", "DynamicQuantizeLinear", "com.microsoft:DynamicQuantizeLSTM"])
    assert lstm is not None and lstm.kind is QuantizedKind.MICROSOFT and lstm.nodes == 3
    qop = quantized_graph(["QuantizeLinear", "QLinearConv", "com.microsoft:QGemm", "DequantizeLinear"])
    assert qop is not None and qop.kind is QuantizedKind.QOPERATOR and qop.nodes == 4
    qdq = quantized_graph(["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"])
    assert qdq is not None and (qdq.kind, qdq.nodes) == (QuantizedKind.QDQ, 3)
    assert qdq.ops == {"DequantizeLinear": 2, "QuantizeLinear": 1}
    assert qdq.describe() == "QDQ: 3 quantized nodes (DequantizeLinear x2, QuantizeLinear x1)"


@pytest.mark.parametrize("kind", ["QDQ", "QOperator", "ConvInteger"])
def test_inspect_names_and_build_refuses_an_already_quantized_model(cli, tmp_path, kind) -> None:
    model = _conv_integer(tmp_path / "convint.onnx") if kind == "ConvInteger" else _ort_quantized(tmp_path, kind)
    expected = {"QDQ": ("qdq", "QDQ"), "QOperator": ("qoperator", "QOperator"),
                "ConvInteger": ("integer", "ConvInteger/MatMulInteger")}[kind]
    ops = [n.op_type for n in onnx.load(str(model)).graph.node]
    counted = sum(op in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QGemm", "QLinearGlobalAveragePool",
                         "QLinearSoftmax", "ConvInteger", "DynamicQuantizeLinear") for op in ops)

    res = cli("inspect", model, "--json")
    assert res.exit_code == 0, res.output
    found = json.loads(res.stdout)["quantized"]
    assert (found["kind"], found["nodes"]) == (expected[0], counted) and counted >= 2
    human = cli("inspect", model)
    assert f"already quantized: {expected[1]}: {counted} quantized nodes (" in human.stdout

    before = model.read_bytes()
    calib = calibration(tmp_path / "calib.npz") if kind != "ConvInteger" else tmp_path / "calib.npz"
    if kind == "ConvInteger":
        np.savez(calib, x=np.random.default_rng(1).random((8, 3, 8, 8), dtype=np.float32))
    start = time.monotonic()
    res = cli("build", model, "--target", "edge-server", "--out", tmp_path / "out", "--calib", calib, "--no-bench")
    elapsed = time.monotonic() - start
    assert res.exit_code == 2, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {model}: the model is already quantized ({expected[1]}: {counted} quantized")
    assert "build from the float export" in line and "`edgeopt bench`" in line
    assert "Traceback" not in res.output and elapsed < 20, elapsed  # refused at load, before any quantizer
    assert model.read_bytes() == before
    assert not list((tmp_path / "out").glob("*.onnx")) if (tmp_path / "out").exists() else True


def test_float_model_is_not_called_quantized(cli, tmp_path) -> None:
    res = cli("inspect", cnn(tmp_path / "m.onnx", opset=13, ir_version=7), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["quantized"] is None
    assert "already quantized" not in cli("inspect", tmp_path / "m.onnx").stdout
