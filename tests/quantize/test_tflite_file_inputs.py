"""Several inputs: calibration arrays reach ai-edge-quantizer's signature by input name, whatever order the
converter gave the tensors (swapped, the [0, 1] image would be calibrated on the [0, 100] extra input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.profiles.schema import Scheme
from edgeopt.quantize.tflite_file import quantize_tflite_file
from tests.quantize.tflite_models import snr_db, two_inputs

pytestmark = pytest.mark.tensorflow  # its model is built with Keras


def _outputs(path: Path, batch: dict[str, np.ndarray]) -> np.ndarray:
    from edgeopt.mcu.compare import make_feeds
    from edgeopt.runtime import open_runner
    from edgeopt.runtime.tensors import from_model_output

    runner = open_runner(path)
    feeds = make_feeds(runner.inputs, batch, 64, keys=runner.input_keys)
    return np.concatenate([from_model_output(runner.run(f)[0], runner.outputs[0]) for f in feeds])


def test_two_inputs_calibrated_by_name(tmp_path: Path) -> None:
    src = two_inputs(tmp_path / "two.tflite")
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(0, 1, (64, 8, 8, 1)).astype(np.float32),
             "extra": rng.uniform(0, 100, (64, 4)).astype(np.float32)}
    dst = tmp_path / "two_int8.tflite"
    quantize_tflite_file(src, dst, Scheme.INT8, batch)
    snr = snr_db(_outputs(src, batch), _outputs(dst, batch))
    assert snr > 25.0, snr
