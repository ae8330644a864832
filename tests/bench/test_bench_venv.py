"""The base install alone (no extras, no TensorFlow) runs `edgeopt bench` and `inspect`.

Builds one fresh venv (no --system-site-packages) and pip-installs this checkout
without extras from the package index: ~1-2 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("base_install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    out = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        pytest.fail(f"pip install {ROOT} failed:\n{out.stderr[-3000:]}")
    return venv


def test_base_install_benches_without_tensorflow(base_venv, models, tmp_path) -> None:
    py, edgeopt = base_venv / "bin" / "python", base_venv / "bin" / "edgeopt"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    probe = "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'tf2onnx') if u.find_spec(m)])"
    assert subprocess.run([str(py), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip() == "[]"
    out = subprocess.run([str(edgeopt), "bench", str(models.tflite_int8), str(models.onnx), "--runs", "3",
                          "--min-seconds", "0", "--warmup-seconds", "0", "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)["results"]
    assert [r["runtime"] for r in results] == ["litert", "onnxruntime"] and all(r["latency"]["p50"] > 0 for r in results)
    for m in (models.tflite_cnn, models.onnx_conv):
        out = subprocess.run([str(edgeopt), "inspect", str(m), "--json"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout)["macs"] > 0
