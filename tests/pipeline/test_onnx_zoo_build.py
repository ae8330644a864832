"""Issue 22: an opset-9, IR-3 CNN from the `onnx` package's own test data (light_squeezenet: initializers listed
as inputs, Conv weights computed by ConstantOfShape nodes) builds int8 for mobile-cpu through onnx2tf: the
private copy is read as IR 4 and constant-folded before onnx2tf sees it (as shipped, onnx2tf lowers its Convs to
CUSTOM ops LiteRT cannot run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

pytestmark = pytest.mark.onnx2tf


def test_opset9_squeezenet_from_the_onnx_package_builds_int8_for_mobile_cpu(cli, tmp_path):
    src = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    model = tmp_path / "squeezenet.onnx"
    shutil.copyfile(src, model)
    before = model.read_bytes()
    proto = onnx.load(str(model))
    assert proto.ir_version == 3 and proto.opset_import[0].version == 9
    x = np.random.default_rng(0).normal(0, 1, (6, 3, 224, 224)).astype(np.float32)  # NCHW, as the model takes
    np.savez(tmp_path / "eval.npz", x=x)
    np.savez(tmp_path / "calib.npz", x=x[:4])
    r = cli("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--calib", tmp_path / "calib.npz",
            "--eval", tmp_path / "eval.npz", "--no-bench")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # an untrained test net on noise: its int8 output is far from float (0 dB, cosine 0 on this host), and the
    # accuracy floors say so (exit 3, as every budget failure) where the build used to pass; it still builds
    failed = {b["name"] for b in report["budgets"] if b["ok"] is False}
    assert r.exit_code == (3 if failed else 0), r.stderr
    assert failed <= {"min_snr_db", "min_cosine"} or any(f.startswith("constant_output") for f in failed), failed
    (o,) = report["optimized"]["accuracy"]["outputs"]
    assert ("min_snr_db" in failed) == (o["snr_db"] < 6.0)
    conversion = report["stages"]["conversion"]
    assert conversion["converter"].startswith("onnx2tf ") and conversion["quantizer"].startswith("ai-edge-quantizer")
    assert conversion["samples"] == 6 and conversion["sample_source"] == "eval data"
    assert all(o["snr_db"] >= conversion["min_snr_db"] for o in conversion["outputs"]), conversion["outputs"]
    # mobile-cpu's [partial] keeps ops float (on the .tflite, ai-edge-quantizer) while the floors fail, then keeps
    # the best variant; still mostly int8
    scheme = report["optimized"]["artifact"]["scheme"]
    assert scheme in ("int8", "int8+float") and (scheme == "int8") == (report["stages"]["partial"] is None), scheme
    out = tmp_path / "out"
    ratio = 0.3 if scheme == "int8" else 0.9
    assert (out / "squeezenet.tflite").stat().st_size < ratio * (out / "squeezenet.float.tflite").stat().st_size
    assert model.read_bytes() == before  # onnx2tf only ever saw a private copy
