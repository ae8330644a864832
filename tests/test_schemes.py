"""Every quantization scheme of the profile format, on the real converters and runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow

# scheme -> (largest optimized/float size ratio, how much accuracy it may lose in points)
TFLITE = {"none": (1.0, 0.0), "float16": (0.52, 0.5), "dynamic": (0.30, 1.0), "int16x8": (0.30, 1.0)}
ONNX = {"float16": (0.52, 0.5), "dynamic": (0.32, 1.0)}


def _build(cli, tmp_path: Path, model: Path, base: str, scheme: str) -> dict:
    prof = tmp_path / f"{scheme}.toml"
    prof.write_text(f'extends = "{base}"\n[quantize]\nscheme = "{scheme}"\n')
    r = cli("build", model, "--target", prof, "--out", tmp_path / "o", "--no-bench", "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("scheme", list(TFLITE))
def test_tflite_schemes(cli, tmp_path: Path, samples: Path, scheme: str):
    rep = _build(cli, tmp_path, samples / "digits_dscnn.keras", "mobile-cpu", scheme)
    max_ratio, max_drop = TFLITE[scheme]
    assert rep["optimized"]["artifact"]["scheme"] == scheme
    assert rep["ratios"]["size"] <= max_ratio
    assert rep["optimized"]["accuracy"]["drop"] <= max_drop
    if scheme == "int16x8":
        from edgeopt.analysis.tflite_graph import read_tflite

        graph = read_tflite(tmp_path / "o" / rep["optimized"]["artifact"]["path"])
        dtypes = {t.dtype for t in graph.tensors}
        assert "int16" in dtypes and "int8" in dtypes  # int16 activations, int8 weights


@pytest.mark.parametrize("scheme", list(ONNX))
def test_onnx_schemes(cli, tmp_path: Path, samples: Path, scheme: str):
    rep = _build(cli, tmp_path, samples / "digits_mlp.onnx", "edge-server", scheme)
    max_ratio, max_drop = ONNX[scheme]
    assert rep["ratios"]["size"] <= max_ratio
    assert rep["optimized"]["accuracy"]["drop"] <= max_drop
