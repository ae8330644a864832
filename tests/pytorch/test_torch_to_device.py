"""Issue 22's done-when: a CNN written in PyTorch and trained here on scikit-learn's digits, exported to ONNX
with torch's exporter, builds int8 for a phone (mobile-cpu: LiteRT) and a microcontroller (nrf52840, with the
real firmware on the emulated Cortex-M4F), through onnx2tf and the .tflite quantizer, every step proven."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.report.schema import Report
from tests.firmware.conftest import needs_toolchain, tflm_dir
from tests.pytorch.torch_models import digits_torch_cnn

pytestmark = [pytest.mark.torch, pytest.mark.onnx2tf, pytest.mark.firmware]

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def torch_cnn(tmp_path_factory):
    """(onnx, torch float top-1 %, eval.npz, calib.npz): calibration is the training half, eval the other."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("torch_cnn")
    onnx_path, top1, eval_npz = digits_torch_cnn(folder)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x = x[np.random.default_rng(0).permutation(len(x))][: len(x) // 2]
    np.savez(folder / "calib.npz", x=x[:200])
    return onnx_path, top1, eval_npz, folder / "calib.npz"


def _build(cli, torch_cnn, target, out, *extra):
    onnx_path, _, eval_npz, calib = torch_cnn
    return cli("build", onnx_path, "--target", target, "--out", out, "--calib", calib, "--eval", eval_npz,
               "--no-bench", *extra)


def test_pytorch_cnn_builds_int8_for_mobile_cpu_within_a_point(cli, torch_cnn, tmp_path):
    _, torch_top1, _, _ = torch_cnn
    out = tmp_path / "mobile"
    r = _build(cli, torch_cnn, "mobile-cpu", out)
    assert r.exit_code == 0, r.stderr
    report = Report.model_validate_json((out / "report.json").read_text())
    acc = report.optimized.accuracy
    assert acc is not None and acc.metric == "top1"
    assert abs(acc.value - torch_top1) <= 1.0, (acc.value, torch_top1)  # measured in LiteRT on the int8 .tflite
    assert report.optimized.artifact.format == "tflite" and report.optimized.artifact.scheme == "int8"
    conversion = json.loads((out / "report.json").read_text())["stages"]["conversion"]
    assert conversion is not None and "onnx2tf" in json.dumps(conversion)
    assert (out / "digits_cnn.tflite").stat().st_size < 0.6 * (out / "digits_cnn.float.tflite").stat().st_size  # 14K weights: headers count


@needs_toolchain
def test_pytorch_cnn_builds_for_nrf52840_with_bit_exact_firmware(cli, torch_cnn, tmp_path):
    out = tmp_path / "nrf"
    r = _build(cli, torch_cnn, "nrf52840", out, "--firmware", "--firmware-samples", "4", "--tflm", tflm_dir())
    assert r.exit_code == 0, r.stderr
    report = Report.model_validate_json((out / "report.json").read_text())
    f = report.stages.firmware
    assert f is not None and f.core == "cortex-m4f" and f.bit_exact is True
    assert f.vs_host_tflm.mismatched_elements == 0 and f.samples == 4
    assert 0 < f.arena.target_bytes < f.arena.host_bytes
    assert 10_000 < f.instructions.median < 100_000_000
    assert (out / "g_model.h").is_file() and (out / "g_model.cc").is_file()
