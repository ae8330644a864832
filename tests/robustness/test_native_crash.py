"""A native crash of the TFLite converter or calibrator is one line and exit 2, with --out untouched.

The converter runs in a child process (edgeopt.convert.isolated). A real input crashes it here: a valid
Keras LSTM model (unroll=False) under int8 calibration dies with SIGSEGV inside TensorFlow 2.21's
calibrator (issue 12). Stages without a real crashing input are made to crash for real with the
test-only EDGEOPT_TEST_CRASH_STAGE, read by the child alone, which kills itself with SIGSEGV when a job
of that stage starts: a real signal in a real child; what is under test is how the parent maps it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.robustness.conftest import MODEL, edgeopt, error_line

pytestmark = pytest.mark.tensorflow

FLOAT16 = 'extends = "mobile-cpu"\n[quantize]\nscheme = "float16"\n'


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def lstm(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny valid Keras LSTM classifier (8 steps x 4 features) and calibration data for it."""
    import keras

    folder = tmp_path_factory.mktemp("lstm")
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 4))
    x = keras.layers.LSTM(16, unroll=False)(inp)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    model.save(folder / "lstm.keras")
    calib = folder / "calib.npz"
    np.savez(calib, x=(np.random.default_rng(0).random((16, 8, 4)) * 3).astype(np.float32))
    return folder / "lstm.keras", calib


def _assert_untouched_and_free(out: Path, before: dict[str, bytes], model: Path, calib: Path, target: Path) -> None:
    assert _snapshot(out) == before  # byte-identical; no staging folder and no lock file left in OUT
    again = edgeopt("build", model, "--target", target, "--calib", calib, "--out", out, "--no-bench", "--force")
    assert again.returncode == 0, again.stderr  # the build lock was released


def test_lstm_int8_calibration_crash_is_one_line(lstm, tmp_path):
    model, calib = lstm
    float16 = tmp_path / "lstm-float16.toml"
    float16.write_text(FLOAT16)
    out = tmp_path / "out"
    first = edgeopt("build", model, "--target", float16, "--calib", calib, "--out", out, "--no-bench")
    assert first.returncode == 0, first.stderr  # the hint's way out works: the same model as float16
    before = _snapshot(out)
    assert "lstm.tflite" in before

    r = edgeopt("build", model, "--target", "mobile-cpu", "--calib", calib, "--out", out, "--no-bench", "--force")
    line = error_line(r)  # exit 2, one line, no traceback
    assert line.startswith("error: the TFLite converter crashed (SIGSEGV) during int8 calibration"), line
    assert 'try [quantize] scheme = "float16"' in line
    _assert_untouched_and_free(out, before, model, calib, float16)


@pytest.mark.parametrize(("stage", "words"), [
    ("convert", "crashed (SIGSEGV) during TFLite conversion"),
    ("calibrate", "crashed (SIGSEGV) during int8 calibration"),
])
def test_crash_in_each_stage_maps_to_exit_2(mobile_build, tmp_path, stage, words):
    """The sample DS-CNN converts fine; its child is made to die in `stage`: exit 2, the stage named."""
    out = tmp_path / "out"
    import shutil

    shutil.copytree(mobile_build, out)
    (out / "notes.txt").write_text("mine\n")
    before = _snapshot(out)
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", out, "--no-bench", "--force",
                env_extra={"EDGEOPT_TEST_CRASH_STAGE": stage})
    line = error_line(r)
    assert words in line, line
    assert _snapshot(out) == before
    assert not list(tmp_path.glob(".edgeopt-*"))
    assert edgeopt("verify", out).returncode == 0  # the earlier build is whole


def test_crash_in_the_quantization_debugger():
    """`inspect --sensitivity` (and accuracy control) calibrate in the child's quantization debugger."""
    r = edgeopt("inspect", MODEL, "--sensitivity", "--calib", MODEL.with_suffix(".calib.npz"),
                env_extra={"EDGEOPT_TEST_CRASH_STAGE": "debug"})
    line = error_line(r)
    assert "crashed (SIGSEGV) during int8 calibration for the quantization debugger" in line, line
    ok = edgeopt("inspect", MODEL, "--sensitivity", "--calib", MODEL.with_suffix(".calib.npz"), "--json")
    assert ok.returncode == 0, ok.stderr  # without the crash, the same command answers
