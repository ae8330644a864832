"""Session fixtures for the real-firmware tests: the TFLM tree, the int8 sample models, the toolchain check.

The TFLM tree is ../shared/tflm next to the repository (CI copies shared/ beside the clone);
$EDGEOPT_TFLM overrides it. The compiled TFLM objects live in the user's cache
($XDG_CACHE_HOME/edgeopt/tflm), so each core's library is compiled once, not once per test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_models"
TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-ar", "arm-none-eabi-size", "arm-none-eabi-nm",
         "qemu-system-arm")
needs_toolchain = pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS),
                                     reason="Arm GNU toolchain / qemu-system-arm not installed (.ci/run installs them)")


def tflm_dir() -> Path:
    env = os.environ.get("EDGEOPT_TFLM")
    path = Path(env) if env else ROOT.parent / "shared" / "tflm"
    assert (path / "tree" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file(), (
        f"the TFLM tree is missing at {path}: copy shared/tflm next to the repository or set EDGEOPT_TFLM")
    return path


@pytest.fixture(scope="session")
def tflm() -> Path:
    return tflm_dir()


@pytest.fixture(scope="session")
def int8_models(tmp_path_factory) -> dict[str, Path]:
    """digits_cnn and digits_dscnn built for embedded-mcu (int8 in and out) by `edgeopt build`."""
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    out = tmp_path_factory.mktemp("fw_models")
    models = {}
    for name in ("digits_cnn", "digits_dscnn"):
        r = CliRunner().invoke(app, ["build", str(SAMPLES / f"{name}.keras"), "--target", "embedded-mcu",
                                     "--out", str(out / name), "--calib", str(SAMPLES / f"{name}.calib.npz"),
                                     "--eval", str(SAMPLES / f"{name}.eval.npz"), "--no-bench"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        models[name] = out / name / f"{name}.tflite"
        assert models[name].is_file()
    return models
