"""The TF-free .tflite reader: ops, dtypes, quantization, MACs, corrupt files."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.analysis.tflite_graph import check_tflite, read_tflite
from edgeopt.errors import ModelFileError

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parents[2]


def test_reads_ops_tensors_and_macs(mcu_models):
    g = read_tflite(mcu_models["int8"])
    assert g.op_names == ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN", "SOFTMAX")
    conv = next(op for op in g.operators if op.op == "CONV_2D")
    assert conv.input_dtypes == ("int8", "int8", "int32") and conv.output_dtypes == ("int8",)
    assert conv.macs == 16 * 16 * 8 * (3 * 3 * 3)  # output elements x kernel volume
    dw = next(op for op in g.operators if op.op == "DEPTHWISE_CONV_2D")
    assert dw.macs == 16 * 16 * 8 * 9
    fc = next(op for op in g.operators if op.op == "FULLY_CONNECTED")
    assert fc.macs == 4 * 8
    assert g.macs == conv.macs + dw.macs + fc.macs
    (x,), (y,) = g.inputs, g.outputs
    assert x.dtype == "int8" and x.shape == (1, 16, 16, 3) and x.quantized and len(x.zero_point) == 1
    assert y.dtype == "int8" and y.scale == (1 / 256,) and y.zero_point == (-128,)
    # weights 8*27 + 8*9 + 4*8, biases 8 + 8 (+ the MEAN axes constant)
    assert g.params >= 8 * 27 + 8 * 9 + 4 * 8  # weights (identical zero biases share one buffer)
    assert 0 < g.param_bytes < g.size_bytes


def test_float_model_dtypes(mcu_models):
    g = read_tflite(mcu_models["float"])
    assert {d for op in g.operators for d in op.output_dtypes} == {"float32"}


@pytest.mark.parametrize("mangle", ["truncate", "offsets", "empty", "not_tflite"])
def test_corrupt_files_raise_one_line(mcu_models, tmp_path: Path, mangle: str):
    data = bytearray(mcu_models["int8"].read_bytes())
    if mangle == "truncate":
        data = data[: len(data) // 3]
    elif mangle == "offsets":
        data[0:4] = (len(data) * 4).to_bytes(4, "little")  # root table offset past the end
    elif mangle == "empty":
        data = bytearray()
    else:
        data[4:8] = b"ONNX"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as info:
        check_tflite(bad)
    msg = str(info.value)
    assert "\n" not in msg and str(bad) in msg


def test_random_byte_flips_never_escape_as_other_errors(mcu_models):
    import random

    data = mcu_models["int8"].read_bytes()
    rng = random.Random(1)
    for _ in range(150):
        b = bytearray(data)
        for _ in range(6):
            b[rng.randrange(8, len(b))] = rng.randrange(256)
        with contextlib.suppress(ModelFileError):
            read_tflite(bytes(b))


def test_reader_does_not_import_tensorflow(mcu_models):
    code = ("import sys; from edgeopt.analysis.tflite_graph import read_tflite; "
            f"g = read_tflite({str(mcu_models['int8'])!r}); assert g.macs > 0; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
