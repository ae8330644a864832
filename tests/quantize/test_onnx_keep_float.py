"""Nodes kept in float stay float inside onnxruntime (real quantize_static, real session optimizer).

onnxruntime's WeightBiasQuantization pass (on by default) quantizes the float weight of a Conv/Gemm fed by a
per-tensor DequantizeLinear when the session is created. Without edgeopt's guard, "keep this layer in float"
would silently become per-tensor int8 on the device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.profiles.schema import Scheme
from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx

KEEP = ("conv2", "fc")


def conv_chain(path: Path) -> Path:
    """x[N,3,8,8] -> conv1 -> relu -> conv2 -> relu -> conv3 -> relu -> flatten -> fc -> [N,10]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    inits = [w("w1", 8, 3, 3, 3), w("b1", 8), w("w2", 8, 8, 3, 3), w("b2", 8), w("w3", 4, 8, 3, 3), w("b3", 4),
             w("wf", 256, 10), w("bf", 10)]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3", **conv),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("Flatten", ["r3"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keep_float")
    src = conv_chain(d / "chain.onnx")
    calib = np.random.default_rng(1).random((16, 3, 8, 8), dtype=np.float32)
    dst = quantize_onnx(src, d / "chain.int8.onnx", OnnxRecipe(Scheme.INT8, calibration=calib,
                                                                nodes_to_exclude=(*KEEP, "relu2")))
    return src, dst


def _optimized(path: Path, out: Path):
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return onnx.load(str(out))


def test_kept_nodes_keep_their_float_weights_after_session_optimization(kept, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    src, dst = kept
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    opt = _optimized(dst, tmp_path / "opt.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in opt.graph.initializer}
    by_name = {n.name: n for n in opt.graph.node}
    for name, weight in (("conv2", "w2"), ("fc", "wf")):
        node = by_name[name]
        assert node.op_type in ("Conv", "Gemm", "FusedConv", "FusedGemm"), node.op_type
        assert node.input[1] == weight and inits[weight].dtype == np.float32
        np.testing.assert_array_equal(inits[weight], original[weight])
    fused = [n.op_type for n in opt.graph.node]
    assert fused.count("QLinearConv") == 2 and "QGemm" not in fused, fused  # conv1, conv3 stay int8


def test_kept_biases_dequantize_to_their_float32_values(kept) -> None:
    import onnx
    from onnx import numpy_helper

    src, dst = kept
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    m = onnx.load(str(dst))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    for name, bias in (("conv2", "b2"), ("fc", "bf")):
        node = next(n for n in m.graph.node if n.name == name)
        dq = producer[node.input[2]]
        assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].dtype == np.int32
        got = (inits[dq.input[0]].astype(np.float32) * inits[dq.input[1]]).astype(np.float32)
        np.testing.assert_allclose(got, original[bias], rtol=2**-22, atol=0)


def test_basic_optimization_leaves_the_numbers_alone(kept) -> None:
    """ORT_ENABLE_BASIC runs the weight-quantizing pass but fuses no int8 kernels: with the guard the graph
    computes exactly what it computes with every optimizer off (without it, conv2 and fc become int8)."""
    import onnxruntime as ort

    _, dst = kept
    x = np.random.default_rng(2).random((8, 3, 8, 8), dtype=np.float32)
    outs = []
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        outs.append(ort.InferenceSession(str(dst), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0])
    np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-5 * float(np.abs(outs[0]).max()))
