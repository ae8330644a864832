"""The front door: `import edgeopt` exposes a pinned set of names, resolved lazily (no framework imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

GOLDEN_ALL = ["__version__", "from_torch"]


def test_all_is_pinned_and_every_name_resolves() -> None:
    import edgeopt

    assert sorted(edgeopt.__all__) == GOLDEN_ALL  # a new public name is a deliberate change of this list
    for name in edgeopt.__all__:
        assert getattr(edgeopt, name) is not None
    assert set(edgeopt.__all__) <= set(dir(edgeopt))
    with pytest.raises(AttributeError, match=r"^module 'edgeopt' has no attribute 'no_such_call'$"):
        edgeopt.no_such_call  # noqa: B018


def test_public_names_import_no_framework() -> None:
    code = ("import sys, edgeopt\n"
            "[getattr(edgeopt, n) for n in edgeopt.__all__]\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras', 'onnxscript')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
