"""C export: structure, exact op resolver, determinism, names, atomic writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeopt.analysis.tflite_graph import read_tflite
from edgeopt.errors import InputError, OutputError
from edgeopt.mcu.c_export import check_c_name, export_c, render


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
    calls = re.findall(r"resolver\.(Add\w+)\(\)", h)
    assert calls == ["AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddMaxPool2D", "AddMean", "AddSoftmax"]
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
