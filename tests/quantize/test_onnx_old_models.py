"""Old ONNX models build int8 for edge-server: opset < 13 is upgraded, IR-3 initializer inputs are weights.

Real onnx.version_converter, onnxruntime quantization and sessions; the artifacts are checked by structure
(opset, per-channel DequantizeLinear) and by numbers (int8 outputs close to the float model's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeopt.atomic import Staging
from edgeopt.errors import ModelFileError
from edgeopt.pipeline.build import _staging_paths_hidden

from .old_onnx import calibration, cnn

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _build(cli, model: Path, out: Path, *extra: str) -> dict:
    res = cli("build", model, "--target", "edge-server", "--out", out, "--no-bench", "--json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _per_channel_weights(path: Path) -> int:
    """DequantizeLinear nodes of a weight with a per-channel (1-D, >1 element) scale."""
    m = onnx.load(str(path))
    inits = {t.name: t for t in m.graph.initializer}
    return sum(1 for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits
               and len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1)


@pytest.mark.parametrize("opset,ir,as_inputs", [(11, 6, False), (9, 4, True), (8, 3, True)])
def test_old_model_builds_int8_per_channel(cli, tmp_path, opset, ir, as_inputs) -> None:
    model = cnn(tmp_path / "m.onnx", opset=opset, ir_version=ir, initializers_as_inputs=as_inputs)
    calib = calibration(tmp_path / "c.npz")
    report = _build(cli, model, tmp_path / "out", "--calib", calib)
    notes = " | ".join(report["notes"])
    assert f"opset {opset} was upgraded to 13 with onnx.version_converter" in notes
    assert ("4 initializers listed as graph inputs" in notes and "data input: 'x'" in notes) == as_inputs
    art = tmp_path / "out" / "m.onnx"
    q = onnx.load(str(art))
    assert next(o.version for o in q.opset_import if o.domain in ("", "ai.onnx")) == 13
    assert _per_channel_weights(art) >= 1  # the Conv weight: one scale per output channel
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) >= 2  # activations are int8
    assert [v.name for v in q.graph.input] == ["x"]
    base = onnx.load(str(tmp_path / "out" / "m.float.onnx"))  # the baseline is the user's model, untouched
    assert base.ir_version == ir and base.opset_import[0].version == opset
    x = np.load(calib)["x"][:16]
    ref, got = _run(model, x), _run(art, x)
    assert got.shape == ref.shape == (16, 10)
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - got) ** 2))
    assert snr > 20, snr


def test_opset_newer_than_onnxruntimes_quantizelinear_is_converted_down(cli, tmp_path) -> None:
    """onnxruntime 1.32 has no QuantizeLinear(28): an opset-28 model's int8 artifact could not load (exit 2,
    "quantized.onnx: onnxruntime lacks op QuantizeLinear"). It is converted to the newest opset that has it."""
    from edgeopt.quantize.onnx_prepare import newest_qdq_opset

    top = newest_qdq_opset(28)
    assert 21 <= top <= 28
    model = cnn(tmp_path / "m.onnx", opset=28, ir_version=11)
    report = _build(cli, model, tmp_path / "out", "--calib", calibration(tmp_path / "c.npz"))
    q = onnx.load(str(tmp_path / "out" / "m.onnx"))
    assert next(o.version for o in q.opset_import if o.domain in ("", "ai.onnx")) == top
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) >= 2
    if top < 28:
        assert any(f"opset 28 was converted to {top}" in n for n in report["notes"]), report["notes"]
    x = np.load(tmp_path / "c.npz")["x"][:16]
    ref, got = _run(model, x), _run(tmp_path / "out" / "m.onnx", x)
    assert 10 * np.log10(np.sum(ref**2) / np.sum((ref - got) ** 2)) > 20


def test_per_channel_off_keeps_the_opset(cli, tmp_path) -> None:
    model = cnn(tmp_path / "m.onnx", opset=11)
    prof = tmp_path / "pt.toml"
    prof.write_text('extends = "edge-server"\nname = "pt"\n[quantize]\nper_channel = false\n')
    res = cli("build", model, "--target", prof, "--out", tmp_path / "out", "--no-bench", "--json",
              "--calib", calibration(tmp_path / "c.npz"))
    assert res.exit_code == 0, res.output
    assert not any("upgraded" in n for n in json.loads(res.stdout)["notes"])
    assert _per_channel_weights(tmp_path / "out" / "m.onnx") == 0


@pytest.mark.slow  # a real 5 MB SqueezeNet quantized and timed: the slowest test of the fast tier (16 s)
@pytest.mark.skipif(not (LIGHT / "light_squeezenet.onnx").is_file(), reason="this onnx version ships no light models")
def test_classic_opset9_squeezenet_from_the_onnx_package(cli, tmp_path) -> None:
    report = _build(cli, LIGHT / "light_squeezenet.onnx", tmp_path / "out", "--random-calibration")
    notes = " | ".join(report["notes"])
    assert "52 initializers listed as graph inputs (IR version 3)" in notes and "data input: 'data_0'" in notes
    assert "opset 9 was upgraded to 13" in notes
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    ref, got = _run(LIGHT / "light_squeezenet.onnx", x), _run(tmp_path / "out" / "light_squeezenet.onnx", x)
    assert got.shape == ref.shape == (1, 1000, 1, 1)


def test_model_onnxruntime_cannot_load_names_the_user_file_and_cause(cli, tmp_path) -> None:
    g = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
                          ir_version=8)
    onnx.save(m, str(tmp_path / "odd.onnx"))
    res = cli("build", tmp_path / "odd.onnx", "--target", "edge-server", "--out", tmp_path / "out",
              "--random-calibration", "--no-bench")
    assert res.exit_code == 2, res.output
    assert "odd.onnx: onnxruntime cannot load the model" in res.stderr and "Frobnicate" in res.stderr
    assert "staging" not in res.stderr and "_work" not in res.stderr and "odd.float.onnx" not in res.stderr


def test_errors_from_stages_do_not_name_the_staging_folder(tmp_path) -> None:
    with pytest.raises(ModelFileError) as info, Staging(tmp_path) as stage, _staging_paths_hidden(stage):
        msg = f"{stage.path('m.onnx')}: the ONNX checker rejects the model: {stage.dir}/_work/pre.onnx"
        raise ModelFileError(msg)
    assert str(info.value) == "m.onnx: the ONNX checker rejects the model: pre.onnx"
