"""ONNX -> float TFLite through the real onnx2tf (its own environment), and the proof it kept the function.

onnx2tf is found the way edgeopt finds it (EDGEOPT_ONNX2TF, the managed environment, PATH); when it is
missing these tests fail with the install command (.ci/run installs it first), they are never skipped.
"""

from __future__ import annotations

import hashlib
import stat
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.convert.onnx2tf import Evidence, Onnx2tfConversion, convert_with_onnx2tf
from edgeopt.convert.onnx2tf_tool import INSTALL_COMMAND, ONNX2TF_VERSION, find_onnx2tf
from edgeopt.errors import (
    ConversionCrashed,
    DataError,
    InputError,
    ModelFileError,
    OutputError,
    RuntimeUnavailableError,
    UnsupportedOpError,
)
from edgeopt.validate.conversion_proof import check_proof, prove_conversion

pytestmark = pytest.mark.onnx2tf


def _const(name: str, a: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(a.astype(np.float32), name)


def cnn(path: Path) -> Path:
    """Conv/BatchNorm/Relu/Conv/Add/GlobalAveragePool/Gemm/Softmax on a 1x3x16x16 image; three outputs listed in an
    order the .tflite does not keep, two of them of one shape (a positional match would swap them)."""
    rng = np.random.default_rng(0)
    inits = [_const("w1", rng.normal(0, .3, (8, 3, 3, 3))), _const("b1", rng.normal(0, .1, 8)),
             _const("g", rng.uniform(.5, 1.5, 8)), _const("be", rng.normal(0, .1, 8)),
             _const("mu", rng.normal(0, .1, 8)), _const("var", rng.uniform(.5, 1.5, 8)),
             _const("w2", rng.normal(0, .3, (8, 8, 3, 3))), _const("fw", rng.normal(0, .3, (8, 5))),
             _const("fb", rng.normal(0, .1, 5))]
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"], name="bn1"),
             helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["features"], name="add1"),
             helper.make_node("GlobalAveragePool", ["features"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], name="fc"),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
             helper.make_node("Sigmoid", ["logits"], ["gates"], name="sigmoid")]
    outputs = [helper.make_tensor_value_info("gates", TensorProto.FLOAT, [1, 5]),
               helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 8, 16, 16]),
               helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 5])]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              outputs, inits)
    return _save(graph, path)


def _save(graph: onnx.GraphProto, path: Path, opset: int = 13) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Onnx2tfConversion, str, str]:
    folder = tmp_path_factory.mktemp("onnx2tf")
    model = cnn(folder / "cnn.onnx")
    before = _sha256(model)
    conversion = convert_with_onnx2tf(model, folder / "cnn.tflite")
    return model, conversion, before, _sha256(model)


def test_the_finder_gives_the_pinned_version() -> None:
    tool = find_onnx2tf()  # fails with the install line when onnx2tf is missing
    assert tool.version == ONNX2TF_VERSION


def test_a_cnn_converts_and_keeps_the_function(converted: tuple[Path, Onnx2tfConversion, str, str]) -> None:
    model, conversion, before, after = converted
    assert after == before  # onnx2tf rewrites its input in place: it only saw a private copy
    assert conversion.tflite.read_bytes()[4:8] == b"TFL3"
    assert (conversion.tool, conversion.version) == ("onnx2tf", ONNX2TF_VERSION)
    assert 0 < conversion.seconds < 300
    (image,) = conversion.inputs
    assert (image.onnx_name, image.onnx_shape, image.tflite_shape) == ("image", (1, 3, 16, 16), (1, 16, 16, 3))
    assert image.perm == (0, 2, 3, 1) and image.evidence is Evidence.SHAPES and image.channels_last
    x = np.random.default_rng(1).normal(size=(6, 3, 16, 16)).astype(np.float32)  # NCHW, as the ONNX model takes
    proof = prove_conversion(model, conversion, {"image": x})
    assert proof.samples == 6
    assert [o.name for o in proof.outputs] == ["gates", "features", "probs"]
    for o in proof.outputs:
        assert o.max_abs < 1e-4, o
        assert o.snr_db > 60, o
    check_proof(proof)  # the default tolerance passes
    with pytest.raises(InputError, match=r"on output 'gates': SNR .* dB, max-abs .* over 6 sample\(s\)") as err:
        check_proof(proof, min_snr_db=500.0)
    assert err.value.exit_code == 2


def test_outputs_are_matched_by_name_with_their_layout(converted: tuple[Path, Onnx2tfConversion, str, str]) -> None:
    _model, conversion, _before, _after = converted
    outs = {m.onnx_name: m for m in conversion.outputs}
    assert set(outs) == {"gates", "features", "probs"}
    assert all(m.named_by_report and m.evidence is Evidence.SHAPES for m in outs.values())
    assert all(m.tflite_name == m.onnx_name == m.signature_key for m in outs.values())
    # onnx2tf keeps the 4-D output in the ONNX layout (it transposes back inside the graph)
    assert outs["features"].tflite_shape == (1, 8, 16, 16) and outs["features"].perm == (0, 1, 2, 3)


def test_channels_last_data_is_refused(converted: tuple[Path, Onnx2tfConversion, str, str]) -> None:
    model, conversion, _before, _after = converted
    nhwc = np.zeros((2, 16, 16, 3), np.float32)
    with pytest.raises(DataError, match=r"looks channels-last.*\(N, 3, 16, 16\): transpose them with "
                                        r"x\.transpose\(0, 3, 1, 2\)") as err:
        prove_conversion(model, conversion, {"image": nhwc})
    assert err.value.exit_code == 2
    with pytest.raises(DataError, match=r"missing image; unknown img"):
        prove_conversion(model, conversion, {"img": nhwc})


def _reduce_with_axes_input(path: Path) -> Path:
    """ReduceL2 whose axes come from a graph input: flatbuffer_direct needs constant axes and refuses it."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("ReduceL2", ["r", "axes"], ["y"], name="dyn_l2", keepdims=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]),
                                           helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])])
    return _save(graph, path, opset=18)


def _tfidf(path: Path) -> Path:
    """TfIdfVectorizer: onnx2tf lowers it to a CUSTOM op that LiteRT cannot run."""
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], name="tfidf_node", mode="TF", min_gram_length=1,
                            max_gram_length=1, max_skip_count=0, ngram_counts=[0, 0], ngram_indexes=[0, 1],
                            pool_int64s=[2, 3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    return _save(graph, path, opset=17)


@pytest.mark.parametrize(("build", "op", "node"), [(_reduce_with_axes_input, "ReduceL2", "dyn_l2"),
                                                   (_tfidf, "TfIdfVectorizer", "tfidf_node")])
def test_an_unconvertible_op_is_exit_2_naming_op_and_node(tmp_path: Path, build, op: str, node: str) -> None:
    model = build(tmp_path / "m.onnx")
    before = _sha256(model)
    with pytest.raises(UnsupportedOpError) as err:
        convert_with_onnx2tf(model, tmp_path / "m.tflite")
    assert err.value.exit_code == 2
    assert err.value.ops == (op,)
    line = str(err.value)
    assert "\n" not in line
    assert f"cannot convert ONNX op {op} (node '{node}')" in line
    assert not (tmp_path / "m.tflite").exists()
    assert _sha256(model) == before


def test_the_model_is_never_the_destination(tmp_path: Path) -> None:
    model = cnn(tmp_path / "cnn.onnx")
    before = _sha256(model)
    with pytest.raises(OutputError, match="is the ONNX model itself; choose another path") as err:
        convert_with_onnx2tf(model, model)
    assert err.value.exit_code == 2
    assert _sha256(model) == before
    with pytest.raises(ModelFileError, match="ONNX model not found"):
        convert_with_onnx2tf(tmp_path / "missing.onnx", tmp_path / "m.tflite")


def test_a_missing_tool_is_exit_2_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_ONNX2TF", "/nonexistent/onnx2tf")
    model = cnn(tmp_path / "cnn.onnx")
    with pytest.raises(RuntimeUnavailableError, match=f"EDGEOPT_ONNX2TF=/nonexistent/onnx2tf .*`{INSTALL_COMMAND}`") as err:
        convert_with_onnx2tf(model, tmp_path / "cnn.tflite")
    assert err.value.exit_code == 2


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_another_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in executable (not onnx2tf) answering `-V` with another version: the finder reads the answer."""
    monkeypatch.setenv("EDGEOPT_ONNX2TF", str(_script(tmp_path / "onnx2tf", 'echo "2.6.8"')))
    with pytest.raises(RuntimeUnavailableError, match=rf"is version 2\.6\.8, edgeopt is tested with "
                                                      rf"{ONNX2TF_VERSION}; install that one with"):
        find_onnx2tf()


def test_a_crash_and_a_timeout_are_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real onnx2tf stopped by a short timeout; a stand-in that dies of SIGSEGV for the crash."""
    model = cnn(tmp_path / "cnn.onnx")
    monkeypatch.setenv("EDGEOPT_ONNX2TF_TIMEOUT", "0.3")
    with pytest.raises(ConversionCrashed, match=r"onnx2tf did not finish within 0\.3 s and was stopped; "
                                                r"EDGEOPT_ONNX2TF_TIMEOUT") as err:
        convert_with_onnx2tf(model, tmp_path / "a.tflite")
    assert err.value.exit_code == 2
    monkeypatch.setenv("EDGEOPT_ONNX2TF_TIMEOUT", "soon")
    with pytest.raises(InputError, match="EDGEOPT_ONNX2TF_TIMEOUT='soon' is not a time in seconds"):
        convert_with_onnx2tf(model, tmp_path / "a.tflite")
    monkeypatch.delenv("EDGEOPT_ONNX2TF_TIMEOUT")
    crash = _script(tmp_path / "onnx2tf", f'[ "$1" = "-V" ] && {{ echo {ONNX2TF_VERSION}; exit 0; }}; kill -SEGV $$')
    monkeypatch.setenv("EDGEOPT_ONNX2TF", str(crash))
    with pytest.raises(ConversionCrashed, match=r"onnx2tf crashed \(SIGSEGV\) while converting") as err:
        convert_with_onnx2tf(model, tmp_path / "a.tflite")
    assert err.value.exit_code == 2
    assert not (tmp_path / "a.tflite").exists()


def test_install_command_is_a_no_op_when_installed(cli) -> None:
    """After `make onnx2tf` (.ci/run) the managed environment is there: the command says so, in JSON too."""
    import json

    from edgeopt.convert.onnx2tf_tool import managed_dir

    r = cli("tools", "install-onnx2tf", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["path"], data["version"], data["created"]) == (str(managed_dir()), ONNX2TF_VERSION, False)
    assert data["size_mb"] > 100


def test_install_command_refuses_an_old_python(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.version_info < (3, 12):  # edgeopt's own interpreter (3.11 in CI) is one onnx2tf cannot use
        r = cli("tools", "install-onnx2tf", "--python", sys.executable)
        assert r.exit_code == 2
        assert f"is Python {sys.version_info[0]}.{sys.version_info[1]}; onnx2tf needs Python >= 3.12" in r.output
    r = cli("tools", "install-onnx2tf", "--python", "/nonexistent/python3")
    assert r.exit_code == 2
    assert "--python /nonexistent/python3 does not run" in r.output
    assert list(tmp_path.iterdir()) == []


def test_a_failed_install_leaves_no_environment(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip cannot reach any package: exit 2 with pip's last line; no onnx2tf folder, no half-built sibling."""
    from edgeopt.convert.onnx2tf_env import find_python

    empty = tmp_path / "no-packages"
    empty.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    r = cli("tools", "install-onnx2tf", "--python", find_python())
    assert r.exit_code == 2, r.output
    assert f"pip install onnx2tf=={ONNX2TF_VERSION} failed" in r.output
    assert list((cache / "edgeopt").iterdir()) == []


def _conv(path: Path, size: int) -> Path:
    w = _const("w", np.random.default_rng(2).normal(size=(4, 3, 1, 1)))
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, size, size])], [w])
    return _save(graph, path)


def test_a_channels_last_output_is_moved_back(tmp_path: Path) -> None:
    """A lone Conv: onnx2tf leaves its output NHWC (its report's channel-last flag says otherwise: not used)."""
    model = _conv(tmp_path / "conv.onnx", 5)
    conversion = convert_with_onnx2tf(model, tmp_path / "conv.tflite")
    (y,) = conversion.outputs
    assert (y.tflite_shape, y.perm, y.evidence) == ((1, 5, 5, 4), (0, 2, 3, 1), Evidence.SHAPES)
    x = np.random.default_rng(3).normal(size=(3, 3, 5, 5)).astype(np.float32)
    (agreement,) = prove_conversion(model, conversion, {"x": x}).outputs
    assert agreement.max_abs < 1e-4 and agreement.snr_db > 60


def test_an_ambiguous_layout_is_said_not_guessed(tmp_path: Path) -> None:
    """A 1x3x3x3 input reads the same in NCHW and NHWC: the correspondence says so and the proof refuses."""
    model = _conv(tmp_path / "cube.onnx", 3)
    conversion = convert_with_onnx2tf(model, tmp_path / "cube.tflite")
    (x,) = conversion.inputs
    assert x.evidence is Evidence.AMBIGUOUS and x.perm is None and not x.channels_last
    with pytest.raises(InputError, match=r"the layout of 'x' in the \.tflite is ambiguous \(ONNX \(1, 3, 3, 3\)"):
        prove_conversion(model, conversion, {"x": np.zeros((1, 3, 3, 3), np.float32)})


def three_inputs(path: Path) -> Path:
    """silero-vad's feeding in small: audio `input` (N, 8) with a symbolic batch, a recurrent `state` (2, 1, 4) whose
    first dimension is fixed and is no batch, and a 0-d int64 sample rate `sr`. out = (input @ w + mean(state)) * sr;
    state_out = tanh(state)."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, .3, (8, 4)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["input", "w"], ["h"], name="mm"),
             helper.make_node("ReduceMean", ["state"], ["s"], axes=[0, 1], keepdims=0, name="rm"),
             helper.make_node("Add", ["h", "s"], ["hs"], name="add"),
             helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["hs", "srf"], ["out"], name="mul"),
             helper.make_node("Tanh", ["state"], ["state_out"], name="tanh")]
    graph = helper.make_graph(nodes, "three", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8]),
                                               helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, 4]),
                                               helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, 1, 4])], [w])
    return _save(graph, path)


def test_a_fixed_first_dimension_is_rows_of_one_run_and_a_scalar_one_element(tmp_path: Path) -> None:
    """Three runs take 3 audio rows, 3 x 2 state rows and 3 sample rates; a count that disagrees is named."""
    model = three_inputs(tmp_path / "three.onnx")
    conversion = convert_with_onnx2tf(model, tmp_path / "three.tflite")
    by_name = {m.onnx_name: m for m in conversion.inputs}
    assert by_name["state"].onnx_shape == (2, 1, 4) and by_name["sr"].onnx_shape == ()
    from edgeopt.analysis.tflite_graph import read_tflite

    # onnxruntime fuses MatMul + Add(mean(state)) into a Gemm with a computed bias: split again for onnx2tf, it is a
    # FULLY_CONNECTED (per-channel int8 weights run right there), not a BATCH_MATMUL
    ops = {op.op for op in read_tflite(conversion.tflite).main.operators}
    assert "FULLY_CONNECTED" in ops and "BATCH_MATMUL" not in ops, ops
    rng = np.random.default_rng(1)
    audio = rng.normal(size=(3, 8)).astype(np.float32)
    state = rng.normal(size=(6, 1, 4)).astype(np.float32)
    sr = np.array([2, 3, 5], np.int64)
    proof = prove_conversion(model, conversion, {"input": audio, "state": state, "sr": sr})
    assert proof.samples == 3
    assert [o.name for o in proof.outputs] == ["out", "state_out"]
    assert all(o.snr_db > 60 and o.max_abs < 1e-4 for o in proof.outputs), proof.outputs
    one = prove_conversion(model, conversion, {"input": audio[:1], "state": state[:2], "sr": np.array(7)})
    assert one.samples == 1  # a 0-d array is one sample rate
    with pytest.raises(DataError, match=r"^the inputs hold different sample counts \(input: 3, state: 2, sr: 3\)"):
        prove_conversion(model, conversion, {"input": audio, "state": state[:4], "sr": sr})
    with pytest.raises(DataError, match=r"'state' have 5 rows; its first dimension is fixed at 2 \(2, 1, 4\), so "
                                        r"each sample is 2 rows: give k x 2 rows"):
        prove_conversion(model, conversion, {"input": audio, "state": state[:5], "sr": sr})
    with pytest.raises(DataError, match=r"'sr' have shape \(3, 1\); the model takes a scalar"):
        prove_conversion(model, conversion, {"input": audio, "state": state, "sr": sr[:, None]})
