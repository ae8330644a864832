"""The base install alone (no extras, no TensorFlow) runs what the README's install table says it runs.

Builds the wheel as `make wheel` does (pip wheel --no-deps), checks it carries the built-in profiles,
then makes one fresh venv (no --system-site-packages) and pip-installs that wheel without extras from
the configured package index: ~1-2 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # installs edgeopt into fresh virtual environments (pip, minutes)

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel `make wheel` builds (same command), in a temporary folder."""
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
                          "-w", str(dist), str(ROOT)], capture_output=True, text=True, env=CLEAN_ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (whl,) = dist.glob("edgeopt-*-py3-none-any.whl")
    return whl


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory, wheel) -> Path:
    venv = tmp_path_factory.mktemp("base_install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                         capture_output=True, text=True, env=CLEAN_ENV, timeout=900)
    if out.returncode != 0:
        pytest.fail(f"pip install {wheel} failed:\n{out.stderr[-3000:]}")
    return venv


def test_wheel_carries_the_builtin_profiles(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"edgeopt/_targets/{p.name}" for p in (ROOT / "targets").glob("*.toml")}
    assert len(shipped) == len(list((ROOT / "targets").glob("*.toml"))) == 11 and shipped <= names  # every profile in targets/ (README: Built-in profiles)
    assert "edgeopt/cli/app.py" in names and not any(n.startswith(("tests/", "targets/")) for n in names)


def test_base_install_benches_without_tensorflow(base_venv, models, tmp_path) -> None:
    py, edgeopt = base_venv / "bin" / "python", base_venv / "bin" / "edgeopt"
    env = CLEAN_ENV
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


def test_base_install_lists_profiles_and_names_the_mcu_extra(base_venv, models, tmp_path) -> None:
    """`targets` runs from the installed wheel (its packaged profiles); `mcu check` and `export-c` need the
    mcu extra and say so in one line, exit 2 (the README's install table)."""
    edgeopt = base_venv / "bin" / "edgeopt"
    out = subprocess.run([str(edgeopt), "targets", "list", "--json"], capture_output=True, text=True, env=CLEAN_ENV,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    listed = json.loads(out.stdout)
    assert sorted(t["name"] for t in listed) == sorted(p.stem for p in (ROOT / "targets").glob("*.toml"))
    assert all("/edgeopt/_targets/" in t["path"] and str(ROOT) not in t["path"] for t in listed)
    for cmd in (["mcu", "check", str(models.tflite_int8)], ["export-c", str(models.tflite_int8), "--out", "gen"]):
        r = subprocess.run([str(edgeopt), *cmd], capture_output=True, text=True, env=CLEAN_ENV, cwd=tmp_path, timeout=120)
        assert r.returncode == 2, r.stderr[-2000:]
        assert "pip install 'edgeopt[mcu]'" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "gen").exists()
