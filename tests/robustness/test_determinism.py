"""Same model, profile, data and tool versions -> byte-identical artifacts (.tflite, .onnx, C files).

report.json/report.md differ (latency, build time) and so does manifest.json (command line, report hash).
"""

from __future__ import annotations

import pytest

from tests.robustness.conftest import MODEL, edgeopt

pytestmark = pytest.mark.tensorflow

ARTIFACT_SUFFIXES = (".tflite", ".onnx", ".cc", ".h", ".c")


def _artifacts(out):
    return {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in ARTIFACT_SUFFIXES}


def test_tflite_rebuild_is_byte_identical(mobile_build, tmp_path):
    # a fresh process: different hash seed, different temp paths
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", tmp_path / "b", "--no-bench",
                env_extra={"PYTHONHASHSEED": "123"})
    assert r.returncode == 0, r.stderr
    first, second = _artifacts(mobile_build), _artifacts(tmp_path / "b")
    assert set(first) == {"digits_dscnn.tflite", "digits_dscnn.float.tflite"}
    assert first == second


@pytest.mark.parametrize("model", [MODEL, MODEL.parent / "digits_mlp.onnx"], ids=["keras", "onnx"])
def test_onnx_rebuild_is_byte_identical(model, tmp_path):
    # tf2onnx names constants from a process-wide counter and merges duplicates in hash order;
    # edgeopt.convert.onnx renumbers them, so different hash seeds give the same bytes
    outs = []
    for i, seed in enumerate(("1", "2")):
        out = tmp_path / f"o{i}"
        r = edgeopt("build", model, "--target", "edge-server", "--out", out, "--no-bench",
                    env_extra={"PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.append(_artifacts(out))
    assert len(outs[0]) == 2 and outs[0] == outs[1]
