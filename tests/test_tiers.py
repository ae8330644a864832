"""The test tiers are checked, not trusted (tests/conftest.py): a test that imports Keras without the `tensorflow`
mark fails naming the mark, and `--fast` leaves a module marked heavy uncollected (not even imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
                          cwd=folder, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_an_unmarked_keras_import_fails_and_fast_skips_heavy_modules(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "keras.py").write_text("")  # a stand-in: importing it is what the check sees, not its weight
    (tmp_path / "test_light.py").write_text("def test_light():\n    import keras  # noqa: F401\n")
    (tmp_path / "test_marked.py").write_text("import pytest\n\n\n@pytest.mark.tensorflow\ndef test_marked():\n"
                                             "    import keras  # noqa: F401\n")
    (tmp_path / "test_heavy.py").write_text("import pytest\n\npytestmark = pytest.mark.tensorflow\n"
                                            "raise SystemExit('imported under --fast')\n")
    full = _pytest(tmp_path, "test_light.py", "test_marked.py")
    assert full.returncode == 1, full.stdout
    assert "test_light.py::test_light: test tier: it imported keras: mark it tensorflow" in full.stdout
    assert "1 failed, 1 passed" in full.stdout
    fast = _pytest(tmp_path, "--fast", "--co")
    assert fast.returncode == 0, fast.stdout + fast.stderr
    assert "test_light.py::test_light" in fast.stdout and "test_heavy" not in fast.stdout
    assert "test_marked" not in fast.stdout and "1/2 tests collected (1 deselected)" in fast.stdout
