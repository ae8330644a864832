"""For MCU use a quantized model is shipped only if host TFLite Micro computes what LiteRT computes (real TFLM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.analysis.tflite_graph import read_tflite
from edgeopt.errors import TflmMismatchError
from edgeopt.mcu.agreement import sandwiched_float_ops
from edgeopt.profiles.schema import IOType, Scheme
from edgeopt.quantize.tflite_file import TfliteFileOptions, quantize_tflite_file
from tests.quantize.tflite_models import dense_softmax, leaky_cnn

pytestmark = pytest.mark.tensorflow  # its models are built with Keras


def test_tflm_disagreeing_with_litert_is_exit_3_naming_the_op(tmp_path: Path) -> None:
    src = dense_softmax(tmp_path / "softmax.tflite")
    x = 3 * np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)
    dst = tmp_path / "softmax_int16x8.tflite"
    opts = TfliteFileOptions(input_type=IOType.INT16, output_type=IOType.INT16, mcu=True)
    with pytest.raises(TflmMismatchError) as e:
        quantize_tflite_file(src, dst, Scheme.INT16X8, x, opts)
    msg = str(e.value)
    assert e.value.exit_code == 3 and "\n" not in msg
    assert "first at SOFTMAX#1" in msg and "differs from LiteRT by 2 steps" in msg, msg
    assert "edgeopt-aeq-" not in msg  # our private copy is never named
    assert not dst.exists()
    # the same model for a phone (no TFLM check) is shipped
    quantize_tflite_file(src, dst, Scheme.INT16X8, x, TfliteFileOptions(mcu=False))
    assert dst.is_file()


def test_an_op_the_quantizer_leaves_float_is_noted_and_checked_on_tflm(tmp_path: Path) -> None:
    src = leaky_cnn(tmp_path / "leaky.tflite")
    x = np.random.default_rng(0).standard_normal((16, 8, 8, 1)).astype(np.float32)
    dst = tmp_path / "leaky_int8.tflite"
    opts = TfliteFileOptions(input_type=IOType.INT8, output_type=IOType.INT8, mcu=True)
    r = quantize_tflite_file(src, dst, Scheme.INT8, x, opts)
    assert "ai-edge-quantizer left 1 op(s) float it cannot quantize: LEAKY_RELU#1" in r.notes, r.notes
    g = read_tflite(dst)
    assert sandwiched_float_ops(g) == ["LEAKY_RELU#2"]  # after the DEQUANTIZE ai-edge-quantizer inserted
    # here TFLM computes the float LEAKY_RELU as LiteRT does, so the model passes
    assert any(n.startswith("TFLite Micro agrees with LiteRT on 16 samples") for n in r.notes), r.notes
