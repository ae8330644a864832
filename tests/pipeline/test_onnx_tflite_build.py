"""ONNX models (NCHW) built for TFLite profiles: onnx2tf's float .tflite, proven, then quantized by
ai-edge-quantizer; all real (onnx2tf, onnxruntime, LiteRT, TFLite Micro), on a tiny conv model of the digits data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.pipeline.build import BuildRequest, build

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"


def _const(name: str, a: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(a.astype(np.float32), name)


def digits_conv(path: Path, two_outputs: bool = False) -> Path:
    """Conv(1->8, 3x3)/Relu/MaxPool 4x4/Flatten/Gemm/Softmax on (N, 1, 16, 16); fixed weights fitted to the digits
    (a least-squares readout of the pooled conv features), so its top-1 is far above chance."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, .5, (8, 1, 3, 3))
    train = np.load(SAMPLES / "digits.train.npz")
    feats = _features(train["x"].transpose(0, 3, 1, 2), w1)  # the sample digits are NHWC: this model takes NCHW
    onehot = np.eye(10)[train["y"]]
    a = np.c_[feats, np.ones(len(feats))]
    fw = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ onehot)  # ridge: small weights, int8-friendly
    inits = [_const("w1", w1), _const("fw", fw[:-1] * 4), _const("fb", fw[-1] * 4)]
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["features"], name="relu1"),
             helper.make_node("MaxPool", ["features"], ["gap"], kernel_shape=[4, 4], strides=[4, 4], name="pool"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], name="fc"),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax")]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])]
    if two_outputs:  # listed first, of another shape: matched by name, moved back to NCHW
        outputs.insert(0, helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 8, 16, 16]))
    graph = helper.make_graph(nodes, "digits_conv", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                   [1, 1, 16, 16])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _features(x: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """Relu(conv) max-pooled 4x4 and flattened (NCHW order), in numpy (the readout's fit)."""
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((len(x), w1.shape[0], 4, 4))
    for k in range(w1.shape[0]):
        acc = np.maximum(sum(pad[:, 0, i:i + 16, j:j + 16] * w1[k, 0, i, j] for i in range(3) for j in range(3)), 0)
        out[:, k] = acc.reshape(len(x), 4, 4, 4, 4).max(axis=(2, 4))
    return out.reshape(len(x), -1)


def _data(folder: Path, name: str) -> None:
    for role in ("calib", "eval"):
        src = np.load(SAMPLES / f"digits_mlp.{role}.npz")
        arrays = {k: src[k] for k in src.files}
        arrays["x"] = arrays["x"].transpose(0, 3, 1, 2).astype(np.float32)
        np.savez(folder / f"{name}.{role}.npz", **arrays)


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx_tflite")
    _data(folder, "digits_conv")
    return digits_conv(folder / "digits_conv.onnx")


def test_onnx_builds_int8_for_mobile_cpu_with_a_conversion_stage(conv: Path, tmp_path: Path) -> None:
    before = conv.read_bytes()
    t0 = time.perf_counter()
    res = build(BuildRequest(model=conv, target="mobile-cpu", out=tmp_path / "out", benchmark=False))
    seconds = time.perf_counter() - t0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    conversion = rep["stages"]["conversion"]
    assert conversion["converter"].startswith("onnx2tf ")
    assert conversion["quantizer"].startswith("ai-edge-quantizer ")
    assert conversion["sample_source"] == "eval data" and conversion["min_snr_db"] == 40
    assert conversion["outputs"][0]["name"] == "probs" and conversion["outputs"][0]["snr_db"] > 60
    assert conversion["inputs_layout"][0]["layout"] == "NHWC (the source model's NCHW)"
    assert conversion["inputs_layout"][0]["artifact_shape"][1:] == [16, 16, 1]
    base, opt = rep["baseline"], rep["optimized"]
    assert base["artifact"]["path"] == "digits_conv.float.tflite" and opt["artifact"]["scheme"] == "int8"
    assert base["accuracy"]["value"] > 50  # the ONNX float model's top-1 on the digits, measured in LiteRT
    assert abs(opt["accuracy"]["value"] - base["accuracy"]["value"]) <= 1.0, (base["accuracy"], opt["accuracy"])
    assert opt["accuracy"]["reference"] == "onnx float (onnxruntime)"
    assert res.ok and conv.read_bytes() == before
    print(f"mobile-cpu build {seconds:.1f} s; top-1 {base['accuracy']['value']} -> {opt['accuracy']['value']}")
