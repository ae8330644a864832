"""manifest.json, `edgeopt verify`, the up-to-date skip and --force."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tests.robustness.conftest import MODEL, edgeopt

pytestmark = pytest.mark.tensorflow


def test_manifest_records_inputs_versions_and_artifacts(mobile_build):
    m = json.loads((mobile_build / "manifest.json").read_text())
    assert m["schema"] == "edgeopt.manifest/1"
    assert m["inputs"]["model"]["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    calib = MODEL.parent / "digits_dscnn.calib.npz"
    assert m["inputs"]["calibration"]["sha256"] == hashlib.sha256(calib.read_bytes()).hexdigest()
    assert m["inputs"]["eval"]["sha256"] and m["inputs"]["train"] is None
    assert m["inputs"]["profile"]["name"] == "mobile-cpu" and m["inputs"]["profile"]["resolved"]["quantize"]["scheme"] == "int8"
    versions = m["inputs"]["versions"]
    for dist in ("edgeopt", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "tflite-micro"):
        assert versions[dist], dist
    assert "build" in m["command_line"]
    for name, info in m["artifacts"].items():
        assert hashlib.sha256((mobile_build / name).read_bytes()).hexdigest() == info["sha256"]
    assert set(m["artifacts"]) == {"digits_dscnn.tflite", "digits_dscnn.float.tflite", "report.json", "report.md",
                                  "report.html"}


def test_verify_names_the_changed_file(mobile_build, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(mobile_build, out)
    r = edgeopt("verify", out)
    assert r.returncode == 0, r.stderr
    data = bytearray((out / "digits_dscnn.tflite").read_bytes())
    data[100] ^= 1
    (out / "digits_dscnn.tflite").write_bytes(bytes(data))
    (out / "report.md").unlink()
    r = edgeopt("verify", out)
    assert r.returncode == 3
    assert "changed: digits_dscnn.tflite" in r.stderr and "missing: report.md" in r.stderr
    assert edgeopt("verify", tmp_path).returncode == 2  # no manifest


def test_unchanged_rebuild_is_skipped_and_force_rebuilds(mobile_build, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(mobile_build, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", out, "--no-bench", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stderr and "--force" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a different option is a different build: not skipped
    (out / "digits_dscnn.tflite").write_bytes(b"TFL3 tampered")
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", out, "--no-bench")
    assert r.returncode == 0 and "up to date" not in r.stderr
    assert (out / "digits_dscnn.tflite").read_bytes() == before["digits_dscnn.tflite"]  # deterministic
    assert edgeopt("verify", out).returncode == 0
