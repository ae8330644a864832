"""Shared fixtures: one real build of the sample DS-CNN for mobile-cpu, made once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "sample_models" / "digits_dscnn.keras"


def edgeopt(*args: str, timeout: float = 300, env_extra: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess:
    """`python -m edgeopt ARGS` in a subprocess (real exit codes and signals)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), **(env_extra or {}))
    env.pop("EDGEOPT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgeopt", *map(str, args)], capture_output=True, text=kw.pop("text", True),
                          timeout=timeout, cwd=kw.pop("cwd", ROOT), env=env, **kw)


@pytest.fixture(scope="session")
def mobile_build(tmp_path_factory) -> Path:
    """OUT folder of `edgeopt build digits_dscnn.keras --target mobile-cpu --no-bench`."""
    out = tmp_path_factory.mktemp("mobile") / "out"
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", out, "--no-bench")
    assert r.returncode == 0, r.stderr
    return out


def error_line(r: subprocess.CompletedProcess) -> str:
    """The one error line of a refused command: exit 2, no traceback, only progress lines ("loading the
    model...") before it."""
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    ok = (r.returncode == 2 and len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in r.stderr
          and all(ln.endswith("...") for ln in lines[:-1]))
    assert ok, (r.returncode, r.stderr)
    return errors[0]
