"""Shared fixtures: the repo's sample models and a CLI runner on the real app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"


# Where edgeopt looks for its tools, caches and switches; libraries' own variables (TF, HDF5...) are not watched.
_WATCHED = ("XDG_CACHE_HOME", "HOME", "TMPDIR", "PATH", "PYTHONPATH", "KERAS_HOME")


def _watched(env) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in _WATCHED or k.startswith("EDGEOPT_")}


@pytest.fixture(autouse=True)
def _environment_is_left_as_found():
    """A test that changes edgeopt's variables without monkeypatch fails, naming them (one once hid onnx2tf from
    every later test on its worker by leaving XDG_CACHE_HOME at its tmp folder); the old values come back.
    EDGEOPT_DEBUG, set by the CLI's own `--debug` run in-process, is restored without failing."""
    before = _watched(os.environ)
    yield
    after = _watched(os.environ)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    for key in changed:
        if key in before:
            os.environ[key] = before[key]
        else:
            del os.environ[key]
    if changed - {"EDGEOPT_DEBUG"}:
        pytest.fail(f"the test left os.environ changed: {', '.join(sorted(changed - {'EDGEOPT_DEBUG'}))}",
                    pytrace=False)


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture()
def cli():
    """Invoke `edgeopt ...` in-process; returns the click Result."""
    from edgeopt.cli.app import app

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run
