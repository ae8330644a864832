"""Item 2 of issue 12: strings from the model that reach g_model.h / g_model.cc cannot leave their comment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.mcu.c_export import c_text

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ("in\n#error injected\n", "*/ int evil; /*", "tail\\", "q??/", "caf\u00e9\r'\"")


def _rename_tensors(src: Path, dst: Path) -> None:
    """Copy `src` with its input and output tensors renamed to hostile strings (a valid model otherwise)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    sg = m.subgraphs[0]
    sg.tensors[sg.inputs[0]].name = (HOSTILE[0] + HOSTILE[1]).encode()
    sg.tensors[sg.outputs[0]].name = "".join(HOSTILE[2:]).encode()
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))


@pytest.mark.skipif(not shutil.which("g++"), reason="g++ not installed")
def test_hostile_tensor_and_file_names_compile_inert(mcu_models, tmp_path: Path):
    model = tmp_path / "m \\\n#error fname\nint evil2; ??=\n.tflite"  # no "/" in a file name
    _rename_tensors(mcu_models["int8"], model)
    out = tmp_path / "c"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "edgeopt", "export-c", str(model), "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    h, cc = (out / "g_model.h").read_text(), (out / "g_model.cc").read_text()
    for text in (h, cc):
        lines = text.splitlines()
        assert not [x for x in lines if "#error" in x and not x.startswith("//")], lines
        assert not [x for x in lines if "evil" in x and not x.startswith("//")]
        assert not [x for x in lines if x.rstrip().endswith("\\")]  # no line splice into the next line
        assert "??" not in text and "*/" not in text
    assert "// input 0: '" + c_text(HOSTILE[0] + HOSTILE[1]) + "'" in h
    # both files compile on the host, and the declarations really are the only ones
    probe = tmp_path / "probe.cc"
    probe.write_text('#include "g_model.cc"\nint evil = 1, evil2 = 2;\n'
                     "static_assert(sizeof(G_MODEL_INPUT0_DTYPE) == 5, \"int8\");\n")
    for flags in ([], ["-trigraphs"], ["-std=c++11", "-trigraphs"]):
        c = subprocess.run(["g++", "-fsyntax-only", "-Wall", "-Werror", *flags, "-I", str(out), str(probe)],
                           capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stderr


def test_c_text_escapes_every_unsafe_byte():
    assert c_text("a\nb") == "a\\012b"
    assert c_text("*/") == "\\052/" and c_text("??/") == "\\077\\077/" and c_text("x\\") == "x\\134"
    assert c_text("caf\u00e9") == "caf\\303\\251"
    assert c_text("serving_default_input:0") == "serving_default_input:0"
