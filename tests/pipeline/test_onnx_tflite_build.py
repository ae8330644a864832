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

from edgeopt.errors import InputError
from edgeopt.pipeline.build import BuildRequest, build

pytestmark = pytest.mark.onnx2tf

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


@pytest.fixture(scope="module")
def mobile(conv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float, bytes]:
    before = conv.read_bytes()
    out = tmp_path_factory.mktemp("mobile") / "out"
    t0 = time.perf_counter()
    build(BuildRequest(model=conv, target="mobile-cpu", out=out, benchmark=False))
    return out, json.loads((out / "report.json").read_text()), time.perf_counter() - t0, before


def test_onnx_builds_int8_for_mobile_cpu_with_a_conversion_stage(conv: Path, mobile: tuple[Path, dict, float, bytes]) -> None:
    out, rep, seconds, before = mobile
    conversion = rep["stages"]["conversion"]
    assert conversion["converter"].startswith("onnx2tf ")
    assert conversion["quantizer"].startswith("ai-edge-quantizer ")
    assert conversion["sample_source"] == "eval data" and conversion["min_snr_db"] == 40
    assert conversion["outputs"][0]["name"] == "probs" and conversion["outputs"][0]["snr_db"] > 60
    assert conversion["inputs_layout"][0]["layout"] == "NHWC (the source model's NCHW)"
    assert conversion["inputs_layout"][0]["artifact_shape"][1:] == [16, 16, 1]
    base, opt = rep["baseline"], rep["optimized"]
    assert base["artifact"]["path"] == "digits_conv.float.tflite" and opt["artifact"]["scheme"] == "int8"
    assert base["accuracy"]["value"] > 80  # the ONNX float model's top-1 on the digits, measured in LiteRT
    assert abs(opt["accuracy"]["value"] - base["accuracy"]["value"]) <= 1.0, (base["accuracy"], opt["accuracy"])
    assert opt["accuracy"]["reference"] == "onnx float (onnxruntime)"
    assert rep["ok"] and conv.read_bytes() == before
    md = (out / "report.md").read_text()
    assert "## Conversion (ONNX -> TFLite)" in md and "| `image` | `image` | [1, 1, 16, 16] | [1, 16, 16, 1] | NHWC" in md
    tools = json.loads((out / "manifest.json").read_text())["tools"]
    assert tools == {"converter": conversion["converter"], "quantizer": conversion["quantizer"]}
    print(f"mobile-cpu build {seconds:.1f} s; top-1 {base['accuracy']['value']:.2f} -> {opt['accuracy']['value']:.2f}")


def test_onnx_builds_for_embedded_mcu_bit_exact_on_tflm(conv: Path, tmp_path: Path, cli,
                                                         mobile: tuple[Path, dict, float, bytes]) -> None:
    t0 = time.perf_counter()
    res = build(BuildRequest(model=conv, target="embedded-mcu", out=tmp_path / "out", benchmark=False))
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    mcu = rep["stages"]["mcu"]
    assert mcu["bit_exact"] is True and mcu["samples_compared"] > 0
    header = (tmp_path / "out" / "g_model.h").read_text()
    assert (tmp_path / "out" / "g_model.cc").stat().st_size > 1000
    # how a firmware engineer feeds it: channels-last int8 with its scale and zero point
    assert '#define G_MODEL_INPUT0_LAYOUT "NHWC (ONNX model: NCHW)"' in header
    assert "#define G_MODEL_INPUT0_SHAPE {1, 16, 16, 1}" in header and '#define G_MODEL_INPUT0_DTYPE "int8"' in header
    assert "#define G_MODEL_INPUT0_ZERO_POINT -128" in header
    assert '#define G_MODEL_OUTPUT0_LAYOUT "as in the ONNX model"' in header
    assert abs(rep["optimized"]["accuracy"]["value"] - rep["baseline"]["accuracy"]["value"]) <= 1.0
    assert rep["stages"]["conversion"]["converter"].startswith("onnx2tf ")
    assert any("TFLite Micro agrees with LiteRT" in n for n in rep["notes"]), rep["notes"]
    assert res.ok
    print(f"embedded-mcu build {time.perf_counter() - t0:.1f} s; arena {mcu['arena_bytes']} B")
    # downstream on the artifact: mcu check, export-c (the same I/O constants), compare with the mobile build
    artifact = tmp_path / "out" / "digits_conv.tflite"
    r = cli("mcu", "check", artifact, "--target", "embedded-mcu")
    assert r.exit_code == 0 and "as profile" in r.output, r.output
    r = cli("export-c", artifact, "--out", tmp_path / "c")
    exported = (tmp_path / "c" / "g_model.h").read_text()
    assert r.exit_code == 0 and "#define G_MODEL_INPUT0_SHAPE {1, 16, 16, 1}" in exported
    assert "#define G_MODEL_INPUT0_ZERO_POINT -128" in exported
    r = cli("compare", tmp_path / "out", mobile[0], "--json")
    rows = json.loads(r.stdout)
    assert r.exit_code == 0 and len(rows) == 2, r.output


def test_a_float_tflite_builds_int8_for_embedded_mcu(mobile: tuple[Path, dict, float, bytes], tmp_path: Path) -> None:
    model = tmp_path / "digits_conv.tflite"
    model.write_bytes((mobile[0] / "digits_conv.float.tflite").read_bytes())
    for role in ("calib", "eval"):  # the .tflite takes the digits channels-last, as the sample data is
        (tmp_path / f"digits_conv.{role}.npz").write_bytes((SAMPLES / f"digits_mlp.{role}.npz").read_bytes())
    from edgeopt.mcu.check import verify_static
    from edgeopt.profiles import load_profile

    with pytest.raises(Exception, match="quantize full-int8 \\(edgeopt build --target embedded-mcu\\)"):
        verify_static(model, load_profile("embedded-mcu").profile)
    t0 = time.perf_counter()
    res = build(BuildRequest(model=model, target="embedded-mcu", out=tmp_path / "out", benchmark=False))
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["stages"]["mcu"]["bit_exact"] is True
    assert rep["optimized"]["accuracy"]["reference"] == "tflite float (LiteRT)"
    assert abs(rep["optimized"]["accuracy"]["value"] - rep["baseline"]["accuracy"]["value"]) <= 1.0
    assert any(n.startswith("quantized by ai-edge-quantizer ") for n in rep["notes"])
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["tools"]["quantizer"].startswith(
        "ai-edge-quantizer ")
    verify_static(tmp_path / "out" / "digits_conv.tflite", load_profile("embedded-mcu").profile)
    assert res.ok
    print(f"float .tflite -> embedded-mcu {time.perf_counter() - t0:.1f} s")
    int8 = tmp_path / "int8.tflite"
    int8.write_bytes((tmp_path / "out" / "digits_conv.tflite").read_bytes())
    with pytest.raises(InputError, match="already quantized"):
        build(BuildRequest(model=int8, target="embedded-mcu", out=tmp_path / "out2", benchmark=False,
                           calib=tmp_path / "digits_conv.calib.npz"))


def test_several_outputs_are_matched_by_name(tmp_path: Path) -> None:
    _data(tmp_path, "two")
    model = digits_conv(tmp_path / "two.onnx", two_outputs=True)
    build(BuildRequest(model=model, target="mobile-cpu", out=tmp_path / "out", benchmark=False))
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    conversion = rep["stages"]["conversion"]
    assert sorted(o["name"] for o in conversion["outputs"]) == ["features", "probs"]
    assert all(o["snr_db"] > 60 for o in conversion["outputs"])
    layouts = {o["name"]: (o["layout"], o["artifact_shape"]) for o in conversion["outputs_layout"]}
    assert layouts == {"features": ("as the source model", [1, 8, 16, 16]), "probs": ("as the source model", [1, 10])}
    scores = {o["name"]: o for o in rep["optimized"]["accuracy"]["outputs"]}
    assert set(scores) == {"features", "probs"}
    assert scores["probs"]["metric"] == "top1" and scores["probs"]["value"] > 80
    assert scores["features"]["snr_db"] > 20  # int8 features moved back to NCHW agree with onnxruntime's


def test_channels_last_data_for_an_nchw_model_is_one_line(conv: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nhwc.npz"
    np.savez(bad, x=np.load(SAMPLES / "digits_mlp.calib.npz")["x"])
    with pytest.raises(Exception) as info:
        build(BuildRequest(model=conv, target="mobile-cpu", out=tmp_path / "out", calib=bad, benchmark=False))
    assert info.value.exit_code == 2 and "looks channels-last" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_prune_profile_on_onnx_is_one_line(conv: Path, tmp_path: Path) -> None:
    profile = tmp_path / "pruned.toml"
    profile.write_text('extends = "mobile-cpu"\nname = "pruned"\n\n[prune]\nmacs_reduction = 0.5\n')
    with pytest.raises(InputError) as info:
        build(BuildRequest(model=conv, target=str(profile), out=tmp_path / "out", benchmark=False))
    assert str(info.value) == ("profile 'pruned' asks for [prune], which needs a Keras model; an ONNX model can only "
                               "be quantized (use a profile without [prune], or build from the Keras model)")
