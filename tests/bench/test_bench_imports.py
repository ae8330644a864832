"""The runtime-only path: `edgeopt bench` and `inspect` never import TensorFlow (nor torch); help starts fast."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from edgeopt.cli.app import app
from typer.testing import CliRunner
for args in ({cmds}):
    r = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, (args, r.output)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras', 'torch', 'onnxscript'))
print('HEAVY', heavy)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_bench_and_inspect_never_import_tensorflow(models) -> None:
    fast = ["--runs", "3", "--min-seconds", "0", "--warmup-seconds", "0"]
    cmds = [["bench", str(models.tflite), str(models.tflite_int8), str(models.onnx), *fast, "--json"],
            ["inspect", str(models.tflite_cnn)], ["inspect", str(models.onnx_conv), "--json"]]
    code = PROBE.format(cmds=", ".join(repr(c) for c in cmds))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test_help_starts_fast() -> None:
    """CPU time, not wall time, so a busy CI machine does not make it flaky."""
    for args in (["--help"], ["bench", "--help"]):
        best_cpu = best_wall = float("inf")
        for _ in range(3):
            c, t = _cpu_seconds(), time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "edgeopt", *args], capture_output=True, text=True, env=_env(),
                                 cwd=ROOT, timeout=60)
            best_wall, best_cpu = min(best_wall, time.perf_counter() - t), min(best_cpu, _cpu_seconds() - c)
            assert out.returncode == 0 and "Usage" in out.stdout
        # ~0.2 s (--help) and ~0.45 s (bench --help: typer builds pydantic adapters) on an idle 2-core VM.
        assert best_cpu < 0.8, f"edgeopt {' '.join(args)} used {best_cpu:.2f} s CPU ({best_wall:.2f} s wall)"
