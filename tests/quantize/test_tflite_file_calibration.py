"""Calibration statistics for ai-edge-quantizer: edgeopt's global min/max against its default moving average, and
the percentile option against an outlier; on a sine MLP trained in the test (TFLite Micro's hello-world task)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.profiles.schema import CalibrationMethod, IOType, Scheme
from edgeopt.quantize.tflite_file import TfliteFileOptions, quantize_tflite_file
from tests.quantize.tflite_models import outputs, sine_mlp

pytestmark = pytest.mark.tensorflow  # its models are built with Keras

X_EVAL = np.linspace(0, 2 * np.pi, 400, dtype=np.float32).reshape(-1, 1)
CALIB = np.random.default_rng(1).uniform(0, 2 * np.pi, (300, 1)).astype(np.float32)
INT8_IO = TfliteFileOptions(input_type=IOType.INT8, output_type=IOType.INT8)


@pytest.fixture(scope="module")
def sine(tmp_path_factory) -> tuple[Path, np.ndarray]:
    path = sine_mlp(tmp_path_factory.mktemp("sine") / "sine.tflite")
    return path, outputs(path, X_EVAL)


def _median_error(path: Path, ref: np.ndarray) -> float:
    return float(np.median(np.abs(outputs(path, X_EVAL) - ref)))


def test_global_min_max_beats_the_moving_average(sine: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from ai_edge_quantizer import quantizer, recipe

    from edgeopt.runtime import open_runner

    path, ref = sine
    ours = tmp_path / "ours.tflite"
    quantize_tflite_file(path, ours, Scheme.INT8, CALIB, INT8_IO)
    # ai-edge-quantizer as documented: the same int8 recipe (int8 I/O), Quantizer.calibrate()'s default statistic
    key = open_runner(path).input_keys[0]
    q = quantizer.Quantizer(str(path), recipe.static_wi8_ai8())
    qsvs = q.calibrate({"serving_default": [{key: CALIB[i:i + 1]} for i in range(len(CALIB))]}, num_threads=1)
    default = tmp_path / "default.tflite"
    default.write_bytes(bytes(q.quantize(qsvs, enable_progress_report=False).quantized_model))
    e_ours, e_default = _median_error(ours, ref), _median_error(default, ref)
    print(f"sine int8 median |error| vs float: global min/max {e_ours:.4f}, moving average {e_default:.4f}")
    assert e_ours < 0.03, e_ours
    assert e_default > 4 * e_ours, (e_ours, e_default)


def test_percentile_ignores_an_outlier_min_max_does_not(sine: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, ref = sine
    calib = np.concatenate([CALIB, np.array([[40.0]], np.float32)])  # one sample far outside the task's range
    minmax, pct = tmp_path / "minmax.tflite", tmp_path / "pct.tflite"
    quantize_tflite_file(path, minmax, Scheme.INT8, calib, INT8_IO)
    opts = TfliteFileOptions(input_type=IOType.INT8, output_type=IOType.INT8, statistic=CalibrationMethod.PERCENTILE,
                             percentile=99.5)
    quantize_tflite_file(path, pct, Scheme.INT8, calib, opts)
    e_minmax, e_pct = _median_error(minmax, ref), _median_error(pct, ref)
    print(f"sine int8 with an outlier, median |error|: min/max {e_minmax:.4f}, percentile 99.5 {e_pct:.4f}")
    assert e_pct < 0.03 and e_minmax > 2 * e_pct, (e_minmax, e_pct)
