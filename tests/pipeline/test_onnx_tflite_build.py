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
    _states_the_layout(cli, artifact, tmp_path)
    from tests.firmware.conftest import tflm_dir

    r = cli("mcu", "run", artifact, "--target", "nrf52840", "--tflm", tflm_dir(), "--samples", "1",
            "--out", tmp_path / "fw", "--json")  # the firmware's own g_model.h and the answer say the same
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    assert run["vs_host_tflm"]["bit_exact"] is True
    assert run["io"]["tensors"][0]["layout"] == "NHWC (the source model's NCHW)"
    assert run["io"]["tensors"][0]["source_shape"] == [1, 1, 16, 16]
    fw_header = (tmp_path / "fw" / "g_model.h").read_text()
    assert '#define G_MODEL_INPUT0_LAYOUT "NHWC (source model: NCHW); source shape [1, 1, 16, 16]"' in fw_header
    r = cli("compare", tmp_path / "out", mobile[0], "--json")
    rows = json.loads(r.stdout)
    assert r.exit_code == 0 and len(rows) == 2, r.output


def _states_the_layout(cli, artifact: Path, tmp_path: Path) -> None:
    """A standalone export-c of an artifact built from ONNX: the layout from the build report beside it (checked by
    the manifest), in g_model.h and --json; a lone copy or a report that is not the build's says it is the .tflite's
    own, with the shapes and quantization read from the file."""
    r = cli("export-c", artifact, "--out", tmp_path / "c2", "--json")
    assert r.exit_code == 0, r.output
    io = json.loads(r.stdout)["io"]
    assert io["origin"].startswith("from report.json beside digits_conv.tflite (its build, checked by manifest.json")
    (image, probs) = io["tensors"]
    assert (image["role"], image["layout"], image["source_name"]) == ("input", "NHWC (the source model's NCHW)", "image")
    assert (image["shape"], image["source_shape"], image["dtype"], image["zero_point"]) == \
        ([1, 16, 16, 1], [1, 1, 16, 16], "int8", -128)
    assert 0 < image["scale"] < 1 and probs["role"] == "output" and probs["dtype"] == "int8"
    header = (tmp_path / "c2" / "g_model.h").read_text()
    assert '#define G_MODEL_INPUT0_LAYOUT "NHWC (source model: NCHW); source shape [1, 1, 16, 16]"' in header
    assert "// I/O layout from report.json beside digits_conv.tflite (its build, checked by manifest.json" in header
    assert f"// input 0 image [1, 16, 16, 1]: NHWC (source model: NCHW); source image [1, 1, 16, 16]; int8, real = " \
           f"{image['scale']:.9g} x (q - -128)" in header
    assert "// real value = G_MODEL_INPUT0_SCALE * (q - G_MODEL_INPUT0_ZERO_POINT)" in header
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / artifact.name).write_bytes(artifact.read_bytes())
    other = tmp_path / "other"  # the build folder with a report.json that is not the one its manifest lists
    other.mkdir()
    for f in ("manifest.json", "report.json", artifact.name):
        (other / f).write_bytes((artifact.parent / f).read_bytes())
    (other / "report.json").write_text((artifact.parent / "report.json").read_text() + " ")
    for model in (alone / artifact.name, other / artifact.name):
        r = cli("export-c", model, "--out", model.parent / "c")
        assert r.exit_code == 0, r.output
        assert "I/O layout from the .tflite itself: no build report.json with a manifest.json listing this file" \
               in " ".join(r.output.split())
        header = (model.parent / "c" / "g_model.h").read_text()
        assert '#define G_MODEL_INPUT0_LAYOUT "as in the .tflite (its own order: no build report beside it says ' \
               'more)"' in header
        assert "#define G_MODEL_INPUT0_SHAPE {1, 16, 16, 1}" in header and "source shape" not in header


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


FLOAT16 = 'extends = "mobile-cpu"\nname = "phone-f16"\n\n[quantize]\nscheme = "float16"\n'


def test_a_state_and_a_scalar_input_are_counted_per_run_through_the_cli(tmp_path: Path, cli) -> None:
    """silero-vad's inputs in small: eval data of 5 runs holds 5 audio rows, 5 x 2 state rows and 5 sample rates."""
    from tests.convert.test_onnx2tf import three_inputs

    model = three_inputs(tmp_path / "three.onnx")
    profile = tmp_path / "f16.toml"
    profile.write_text(FLOAT16)
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "runs.npz", input=rng.normal(size=(5, 8)).astype(np.float32),
             state=rng.normal(size=(10, 1, 4)).astype(np.float32), sr=np.array([1, 2, 3, 1, 2]))
    result = cli("build", model, "--target", profile, "--out", tmp_path / "out", "--no-bench", "--eval",
                 tmp_path / "runs.npz")
    assert result.exit_code == 0, result.output
    conversion = json.loads((tmp_path / "out" / "report.json").read_text())["stages"]["conversion"]
    assert (conversion["samples"], conversion["sample_source"]) == (5, "eval data")
    assert all(o["snr_db"] > 60 for o in conversion["outputs"])
    shapes = {t["name"]: (t["source_shape"], t["artifact_shape"]) for t in conversion["inputs_layout"]}
    assert shapes == {"input": ([None, 8], [-1, 8]), "state": ([2, 1, 4], [2, 4, 1]), "sr": ([], [1])}
    np.savez(tmp_path / "odd.npz", input=rng.normal(size=(5, 8)).astype(np.float32),
             state=rng.normal(size=(5, 1, 4)).astype(np.float32), sr=np.array([1, 2, 3, 1, 2]))
    bad = cli("build", model, "--target", profile, "--out", tmp_path / "out2", "--no-bench", "--eval",
              tmp_path / "odd.npz")
    assert bad.exit_code == 2
    assert "input 'state' has a fixed first dimension 2 (shape (2, 1, 4)), and the data's 5 rows are not a " \
           "multiple of it" in bad.output
    assert not (tmp_path / "out2").exists()


def _symbolic(path: Path) -> Path:
    """Conv/Relu/GlobalAveragePool on (N, 3, H, W): its height and width are symbolic."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, .3, (4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["out"], name="flat")]
    graph = helper.make_graph(nodes, "sym", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                           ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_symbolic_dimensions_need_data_or_a_shape(tmp_path: Path, cli) -> None:
    model = _symbolic(tmp_path / "sym.onnx")
    profile = tmp_path / "f16.toml"
    profile.write_text(FLOAT16)
    fixes = "give --calib or --eval data of the size you deploy, or the size: --shape image=1x3x?x? (each ? a number)"
    result = cli("build", model, "--target", profile, "--out", tmp_path / "out", "--no-bench")
    assert result.exit_code == 2
    assert f"input 'image' has symbolic dimensions (N, 3, ?, ?) and no data was given to convert and prove it for " \
           f"TFLite at a size; {fixes}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
    random_calib = cli("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--no-bench",
                       "--random-calibration")
    assert random_calib.exit_code == 2
    assert "(N, 3, ?, ?) has dynamic dimensions, so random calibration does not know what size to make: give " \
           "--calib data of the size you deploy, or the size: --shape image=1x3x?x?" in random_calib.output
    out = tmp_path / "sized"  # --shape sizes the random calibration samples, the conversion and so its proof
    sized = cli("build", model, "--target", "mobile-cpu", "--out", out, "--no-bench", "--shape", "image=1x3x8x8",
                "--random-calibration")
    assert sized.exit_code == 0, sized.output
    conversion = json.loads((out / "report.json").read_text())["stages"]["conversion"]
    assert conversion["sample_source"] == "calibration data" and conversion["samples"] == 32
    (image,) = conversion["inputs_layout"]
    assert (image["source_shape"], image["artifact_shape"]) == ([None, 3, None, None], [-1, 8, 8, 3])
    assert all(o["snr_db"] > 60 for o in conversion["outputs"])


def test_a_bias_free_matmul_gets_per_channel_int8_weights(tmp_path: Path) -> None:
    """MatMul by a constant weight with no bias Add after it: onnx2tf would make it BATCH_MATMUL, whose per-channel
    int8 weights LiteRT does not apply (top-1 98.6% -> 10.3% measured); edgeopt hands onnx2tf a Gemm instead, so it
    is a FULLY_CONNECTED with per-channel weights and keeps its accuracy."""
    from edgeopt.analysis.tflite_graph import read_tflite

    train = np.load(SAMPLES / "digits.train.npz")
    x = train["x"].reshape(len(train["x"]), -1)
    w = np.linalg.solve(x.T @ x + 1.0 * np.eye(x.shape[1]), x.T @ np.eye(10)[train["y"]]) * 4
    nodes = [helper.make_node("MatMul", ["pixels", "w"], ["logits"], name="fc"),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax")]
    graph = helper.make_graph(nodes, "nobias", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 256])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])], [_const("w", w)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "nobias.onnx"))
    for role in ("calib", "eval"):
        src = np.load(SAMPLES / f"digits_mlp.{role}.npz")
        np.savez(tmp_path / f"nobias.{role}.npz", **{k: src[k].reshape(len(src[k]), -1) if k == "x" else src[k]
                                                      for k in src.files})
    out = tmp_path / "out"
    build(BuildRequest(model=tmp_path / "nobias.onnx", target="mobile-cpu", out=out, benchmark=False))
    rep = json.loads((out / "report.json").read_text())
    assert not any("per-channel weights off" in n for n in rep["notes"]), rep["notes"]
    graph_q = read_tflite(out / "nobias.tflite")
    (fc,) = [op for op in graph_q.main.operators if op.op in ("FULLY_CONNECTED", "BATCH_MATMUL")]
    assert fc.op == "FULLY_CONNECTED"
    weight = next(graph_q.main.tensors[i] for i in fc.inputs if i >= 0 and graph_q.main.tensors[i].is_constant)
    assert weight.dtype == "int8" and len(weight.scale) == 10  # one scale per output channel
    base, opt = rep["baseline"]["accuracy"]["value"], rep["optimized"]["accuracy"]["value"]
    assert base > 90 and opt >= base - 2.0, (base, opt)
