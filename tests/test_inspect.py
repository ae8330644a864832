"""`edgeopt inspect` on .tflite and .onnx (no TensorFlow) and .keras; params and MACs checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeopt.analysis.inspect import inspect_model
from edgeopt.errors import ModelFileError
from tests.bench import bench_models as bm

pytestmark = pytest.mark.tensorflow

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def test_tflite_params_macs_layers(tmp_path) -> None:
    info = inspect_model(bm.tflite_cnn(tmp_path / "cnn.tflite"))
    assert info.format == "tflite" and info.bytes == (tmp_path / "cnn.tflite").stat().st_size
    assert info.macs == 8 * 8 * 4 * 9 + 256 * 10
    conv, reshape, fc = info.layers
    assert (conv.op, conv.output_shape, conv.params, conv.macs) == ("CONV_2D", (1, 8, 8, 4), 36 + 4, 2304)
    assert (fc.op, fc.params, fc.macs) == ("FULLY_CONNECTED", 2560 + 10, 2560)
    assert info.op_counts == {"CONV_2D": 1, "FULLY_CONNECTED": 1, "RESHAPE": 1}
    assert [t.name for t in info.inputs] == ["image"] and info.inputs[0].shape == (1, 8, 8, 1)


def test_tflite_int8_io_quantization(tmp_path) -> None:
    info = inspect_model(bm.tflite_mlp(tmp_path / "q.tflite", int8=True))
    (x,), (y,) = info.inputs, info.outputs
    assert (x.dtype, x.scale, x.zero_point) == ("int8", pytest.approx(0.05), 0)
    assert y.dtype == "int8" and info.params == 64 * 32 + 32 and info.macs == 64 * 32


def test_onnx_params_macs_float_and_qdq(tmp_path) -> None:
    conv = inspect_model(bm.onnx_conv(tmp_path / "conv.onnx"))
    assert (conv.params, conv.macs) == (4 * 27 + 4, 8 * 8 * 4 * 27)
    assert conv.layers[0].output_shape == (1, 4, 8, 8) and conv.details["opsets"] == {"ai.onnx": 17}
    mlp = inspect_model(bm.onnx_mlp(tmp_path / "mlp.onnx"))
    assert mlp.macs == 64 * 32 + 32 * 10 and mlp.params == 64 * 32 + 32 + 32 * 10 + 10
    assert mlp.inputs[0].shape == (-1, 64) and mlp.outputs[0].shape == (-1, 10)
    qdq = inspect_model(bm.quantize_onnx_int8(tmp_path / "mlp.onnx", tmp_path / "mlp_int8.onnx"))
    assert qdq.macs == mlp.macs and qdq.params == mlp.params  # scales / zero points are not params
    assert qdq.op_counts["DequantizeLinear"] > 0


def test_sample_onnx_and_json(cli, tmp_path) -> None:
    res = cli("inspect", SAMPLES / "digits_mlp.onnx", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["format"] == "onnx" and d["params"] > 0 and d["macs"] > 0
    assert d["inputs"][0]["name"] == "input" and d["outputs"][0]["name"] == "probs"
    assert sum(x["macs"] for x in d["layers"]) == d["macs"]
    human = cli("inspect", SAMPLES / "digits_mlp.onnx")
    assert human.exit_code == 0 and "op counts" in human.stdout


@pytest.mark.parametrize("payload,name,needle", [
    (b"\x00\x00\x00\x00TFL3" + b"\xff" * 40, "bad.tflite", "corrupt .tflite"),
    (b"hello world", "bad.tflite", "not a TFLite flatbuffer"),
    (b"\x08\x07garbage" * 20, "bad.onnx", "not a readable ONNX model"),
    (b"", "empty.onnx", "empty"),
])
def test_corrupt_files_one_line_exit_2(cli, tmp_path, payload, name, needle) -> None:
    (tmp_path / name).write_bytes(payload)
    res = cli("inspect", tmp_path / name)
    assert res.exit_code == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output


def test_onnx_checker_failure_is_model_file_error(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])  # output nobody produces
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(tmp_path / "x.onnx"))
    with pytest.raises(ModelFileError, match="ONNX checker"):
        inspect_model(tmp_path / "x.onnx")


def test_keras_model_uses_keras_stats() -> None:
    pytest.importorskip("tensorflow")
    info = inspect_model(SAMPLES / "digits_dscnn.keras")
    assert info.format == "keras" and info.params > 0 and info.macs > 0
    assert info.inputs[0].shape[1:] == (16, 16, 1)
    assert any(x.op == "DepthwiseConv2D" or x.op == "SeparableConv2D" for x in info.layers)
