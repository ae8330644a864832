"""C export: structure, exact op resolver, determinism, names, atomic writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeopt.analysis.tflite_graph import read_tflite
from edgeopt.errors import InputError, OutputError
from edgeopt.mcu.c_export import check_c_name, export_c, render

pytestmark = pytest.mark.tensorflow


def _export(model: Path, out: Path, name: str = "g_model"):
    return export_c(model, read_tflite(model), out, name, arena_bytes=8192, arena_measured=6000, margin_note="test margin")


def test_header_and_source_structure(mcu_models, tmp_path: Path):
    files = _export(mcu_models["int8"], tmp_path, "kws_model")
    h, cc = files.header.read_text(), files.source.read_text()
    assert files.header.name == "kws_model.h" and files.source.name == "kws_model.cc"
    n = mcu_models["int8"].stat().st_size
    assert f"#define KWS_MODEL_LEN {n}" in h and f"const unsigned int kws_model_len = {n};" in cc
    assert "alignas(16) extern const unsigned char kws_model[KWS_MODEL_LEN];" in h
    assert "alignas(16) const unsigned char kws_model[] = {" in cc
    assert "#define KWS_MODEL_ARENA_SIZE 8192" in h and "#define KWS_MODEL_ARENA_MEASURED 6000" in h
    assert "#define KWS_MODEL_INPUT0_SHAPE {1, 16, 16, 3}" in h and "#define KWS_MODEL_INPUT0_CTYPE int8_t" in h
    assert "#define KWS_MODEL_OUTPUT0_SCALE 0.00390625f" in h and "#define KWS_MODEL_OUTPUT0_ZERO_POINT -128" in h
    assert re.search(r"#define KWS_MODEL_INPUT0_ZERO_POINT -?\d+", h)
    # exactly the model's ops, each once, with TFLM's method names
    calls = re.findall(r"resolver\.(Add\w+)\((.*)\) != kTfLiteOk", h)
    assert [c for c, _ in calls] == ["AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddMaxPool2D", "AddMean",
                                     "AddSoftmax"]
    # every tensor of the model is int8: each op with an int8-only kernel registers it (MEAN has none)
    assert dict(calls) == {"AddConv2D": "KWS_MODEL_INT8_KERNEL(tflite::Register_CONV_2D_INT8())",
                           "AddDepthwiseConv2D": "KWS_MODEL_INT8_KERNEL(tflite::Register_DEPTHWISE_CONV_2D_INT8())",
                           "AddFullyConnected": "KWS_MODEL_INT8_KERNEL(tflite::Register_FULLY_CONNECTED_INT8())",
                           "AddMaxPool2D": "KWS_MODEL_INT8_KERNEL(tflite::Register_MAX_POOL_2D_INT8())", "AddMean": "",
                           "AddSoftmax": "KWS_MODEL_INT8_KERNEL(tflite::Register_SOFTMAX_INT8())"}
    assert files.int8_only == ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX")
    assert '#include "tensorflow/lite/micro/kernels/conv.h"' in h and "#ifdef KWS_MODEL_ALL_KERNEL_VARIANTS" in h
    assert "tflite::MicroMutableOpResolver<KWS_MODEL_OP_COUNT>" in h and "#define KWS_MODEL_OP_COUNT 6" in h
    # the bytes round-trip
    data = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", cc.split("= {", 1)[1]))
    assert data == mcu_models["int8"].read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_output_is_deterministic(mcu_models, tmp_path: Path):
    a = _export(mcu_models["int8"], tmp_path / "a")
    b = _export(mcu_models["int8"], tmp_path / "b")
    assert a.header.read_bytes() == b.header.read_bytes() and a.source.read_bytes() == b.source.read_bytes()


@pytest.mark.parametrize("name", ["9model", "g-model", "", "int", "class", "__x", "_Model", "a b"])
def test_invalid_names(name: str):
    with pytest.raises(InputError, match="C identifier|reserved"):
        check_c_name(name)


def test_unwritable_output_leaves_nothing(mcu_models, tmp_path: Path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        _export(mcu_models["int8"], blocker / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_render_refuses_unsupported_ops(mcu_models):
    from edgeopt.errors import UnsupportedOpError

    model = mcu_models["topk"]
    with pytest.raises(UnsupportedOpError, match="TOPK_V2"):
        render(model.read_bytes(), read_tflite(model), "g_model", arena_bytes=1, arena_measured=1,
               margin_note="", source_name=model.name, version="0")


_MAIN_C = """#include <stdint.h>
#include <stdio.h>
#include "g_model.h"

int main(void) {
  /* the array is 16-byte aligned, its length is the file's, the shape macros expand in C */
  static const int shape[] = G_MODEL_INPUT0_SHAPE;
  G_MODEL_INPUT0_CTYPE first = 0;
  printf("%u %d %d %d\\n", g_model_len, (int)((uintptr_t)g_model % 16), (int)shape[1], (int)sizeof first);
  return g_model_len == G_MODEL_LEN ? 0 : 1;
}
"""


@pytest.mark.parametrize(("compiler", "flags"), [
    ("gcc", ["-std=c11", "-x", "c"]),
    ("g++", ["-std=c++17", "-x", "c++"]),
    ("arm-none-eabi-gcc", ["-std=c11", "-x", "c", "-mcpu=cortex-m4", "-mthumb"]),
])
def test_header_and_data_compile_as_c11_and_cpp(mcu_models, tmp_path: Path, compiler: str, flags: list[str]):
    """g_model.h and g_model.cc compile with -Wall -Werror as C11 (for C firmware) and as C++."""
    import shutil
    import subprocess

    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    _export(mcu_models["int8"], tmp_path)
    (tmp_path / "main.c").write_text(_MAIN_C)
    for src in ("main.c", "g_model.cc"):
        proc = subprocess.run([compiler, *flags, "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", src,
                               "-o", f"{src}.o"], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    if compiler.startswith("arm-"):
        return
    link = subprocess.run([compiler, "main.c.o", "g_model.cc.o", "-o", "app"], cwd=tmp_path, capture_output=True, text=True)
    assert link.returncode == 0, link.stderr
    run = subprocess.run([str(tmp_path / "app")], capture_output=True, text=True)
    n = mcu_models["int8"].stat().st_size
    assert run.returncode == 0 and run.stdout.split() == [str(n), "0", "16", "1"]


def test_c_link_with_cpp_data(mcu_models, tmp_path: Path):
    """A C main links against the data compiled as C++ (the .cc as shipped): the array has C linkage."""
    import shutil
    import subprocess

    if shutil.which("gcc") is None or shutil.which("g++") is None:
        pytest.skip("gcc/g++ are not installed")
    _export(mcu_models["int8"], tmp_path)
    (tmp_path / "main.c").write_text(_MAIN_C)
    for cmd in (["gcc", "-std=c11", "-Wall", "-Werror", "-c", "main.c"],
                ["g++", "-std=c++17", "-Wall", "-Werror", "-c", "g_model.cc"],
                ["g++", "main.o", "g_model.o", "-o", "app"]):
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(tmp_path / "app")], capture_output=True).returncode == 0


def test_int8_kernels_only_where_every_tensor_is_int8(mcu_models, tmp_path: Path):
    """int16x8 activations keep the generic kernels (their int16 variants are needed); int8 ops of the same model
    would not: the choice is per op, over every instance of it."""
    from edgeopt.mcu.ops import int8_only_ops

    assert int8_only_ops(read_tflite(mcu_models["int16x8"])) == ()
    h = _export(mcu_models["int16x8"], tmp_path).header.read_text()
    assert "resolver.AddConv2D() != kTfLiteOk" in h and "INT8_KERNEL" not in h
