"""Item 5 of issue 12: inputs are validated before anything reads them, and every read is bounded.

Every command runs in a subprocess with a timeout: on the old code these cases hung (FIFO, /dev/zero, /usr,
a planted manifest) or ran in quadratic time, so a timeout is the failure.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.robustness.conftest import ROOT, edgeopt, error_line

pytestmark = pytest.mark.tensorflow

KERAS = ROOT / "sample_models" / "digits_dscnn.keras"
CALIB = ROOT / "sample_models" / "digits_dscnn.calib.npz"
ONNX = ROOT / "sample_models" / "digits_mlp.onnx"
QUICK = 90  # seconds: generous for a loaded machine; these commands stop before any conversion


def _one_line(r) -> str:
    return error_line(r)


def _special(tmp_path: Path, kind: str, suffix: str) -> Path:
    if kind == "fifo":
        p = tmp_path / f"pipe{suffix}"
        os.mkfifo(p)
        return p
    if kind == "devzero":
        p = tmp_path / f"zero{suffix}"
        p.symlink_to("/dev/zero")  # a known suffix, so only the file type can stop it
        return p
    return Path("/usr")


@pytest.mark.parametrize("kind", ["fifo", "devzero", "usr"])
def test_special_file_as_model_is_refused_at_once(tmp_path, kind):
    model = _special(tmp_path, kind, ".keras")
    r = edgeopt("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--calib", CALIB,
                "--no-bench", timeout=QUICK)
    line = _one_line(r)
    assert {"fifo": "FIFO", "devzero": "device", "usr": "without saved_model.pb"}[kind] in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["fifo", "devzero", "usr"])
def test_special_file_as_calibration_data_is_refused_at_once(tmp_path, kind):
    calib = _special(tmp_path, kind, ".npz")
    r = edgeopt("build", KERAS, "--target", "mobile-cpu", "--out", tmp_path / "out", "--calib", calib,
                "--no-bench", timeout=QUICK)
    line = _one_line(r)
    assert {"fifo": "FIFO", "devzero": "device", "usr": "expected .npz"}[kind] in line, line
    assert not (tmp_path / "out").exists()


def test_planted_manifest_paths_are_never_read(tmp_path):
    """OUT/manifest.json names /dev/zero and a FIFO as inputs: a later build into OUT and `verify OUT` finish."""
    out = tmp_path / "out"
    out.mkdir()
    fifo = tmp_path / "planted.npz"
    os.mkfifo(fifo)
    (out / "manifest.json").write_text(json.dumps({
        "schema": "edgeopt.manifest/1", "input_key": "x", "artifacts": {"report.json": "not an object"},
        "inputs": {"model": {"path": "/dev/zero", "sha256": "0"}, "calibration": {"path": str(fifo), "sha256": "0"},
                   "eval": {"path": "/usr", "sha256": "0"}}}))
    profile = tmp_path / "prunes.toml"  # pruning an ONNX model is refused once the model is open
    profile.write_text('extends = "mobile-cpu"\n[prune]\nratio = 0.5\n')
    r = edgeopt("build", ONNX, "--target", profile, "--out", out, "--no-bench", timeout=QUICK)
    assert "needs a Keras model" in _one_line(r)  # the build got past the up-to-date check to its own refusal
    r = edgeopt("verify", out, timeout=QUICK, env_extra={"COLUMNS": "1000"})
    assert r.returncode == 3, r.stderr  # verify's "artifacts changed"
    said = r.stdout + r.stderr
    assert "changed: report.json (the manifest entry is not an object)" in said
    assert "/dev/zero (model; not a regular file or SavedModel any more)" in said, said


def _npz_declaring(path: Path, shape: tuple[int, ...], declared: int) -> Path:
    """A valid-looking .npz whose x.npy member *declares* `declared` uncompressed bytes (a zip bomb's header)."""
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", hdr.getvalue() + bytes(4096))
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)  # uncompressed size, local header
    struct.pack_into("<I", data, central + 24, declared)  # and central directory
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).getinfo("x.npy").file_size == declared
    return path


def test_npz_member_declaring_2_gib_is_refused_before_inflating(tmp_path):
    rows = (1 << 31) // (4 * 8 * 8)
    bomb = _npz_declaring(tmp_path / "bomb.npz", (rows, 8, 8, 1), (1 << 31) + 256)
    assert bomb.stat().st_size < 10_000
    r = edgeopt("build", KERAS, "--target", "mobile-cpu", "--out", tmp_path / "out", "--calib", bomb,
                "--no-bench", timeout=QUICK)
    line = _one_line(r)
    assert "2,147,483,904 bytes when read, over the 1,024 MB limit" in line and "EDGEOPT_MAX_DATA_MB" in line, line


def test_npz_header_is_checked_against_the_model_input_before_inflating(tmp_path):
    from edgeopt.data.datasets import load_dataset
    from edgeopt.errors import DataError

    bad = _npz_declaring(tmp_path / "wrong.npz", (1000, 3, 3), 36_000 + 128)
    with pytest.raises(DataError, match=r"has shape \(1000, 3, 3\); the model expects \(N, 8, 8, 1\)"):
        load_dataset(bad, "calibration", (None, 8, 8, 1))


def _npy_bytes(n: int = 8) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros((n, 16, 16, 1), np.float32))
    return buf.getvalue()


SHAPE = b"(8, 16, 16, 1)"
# Unbalanced brackets in the header: numpy's tokenizer raised TokenError (exit 1) for each (issue 21 item 6)
NPY_HEADER_CUTS = {
    "open paren": (SHAPE, b"(" + SHAPE, "unbalanced brackets"),
    "close paren": (SHAPE, SHAPE + b")", "unbalanced brackets"),
    "open brace": (b"{'descr'", b"{{'descr'", "unbalanced brackets"),
    "no close brace": (b", }", b",  ", "unbalanced brackets"),
    "open bracket": (b"'<f4'", b"['<f4'", "unbalanced brackets"),
    "paren closed by bracket": (SHAPE, SHAPE[:-1] + b"]", "not a dict of descr, fortran_order and shape"),
    "open quote": (b"'descr'", b"'descr", "not a dict of descr, fortran_order and shape"),
}


@pytest.mark.parametrize("case", list(NPY_HEADER_CUTS))
def test_npy_header_with_unbalanced_brackets_is_corrupt_data(tmp_path, case):
    from edgeopt.data.datasets import load_dataset
    from edgeopt.errors import DataError

    old, new, why = NPY_HEADER_CUTS[case]
    raw = _npy_bytes()
    assert raw.count(old) == 1
    bad = tmp_path / "c.npy"
    bad.write_bytes(raw.replace(old, new))
    with pytest.raises(DataError) as err:
        load_dataset(bad, "calibration", (None, 16, 16, 1))
    assert str(err.value) == (f"calibration data {bad} has a corrupt .npy header ({why}); save the data again "
                              "with numpy")
    member = tmp_path / "e.npz"  # the same header as the labels member of an .npz
    with zipfile.ZipFile(member, "w") as zf:
        zf.writestr("x.npy", raw)
        zf.writestr("y.npy", raw.replace(old, new))
    with pytest.raises(DataError, match=rf"e\.npz: array 'y' has a corrupt \.npy header \({why}\)"):
        load_dataset(member, "eval", (None, 16, 16, 1))


def test_npy_header_with_unbalanced_brackets_is_exit_2(tmp_path):
    bad = tmp_path / "calib.npy"
    bad.write_bytes(_npy_bytes().replace(SHAPE, b"(" + SHAPE))
    r = edgeopt("build", ONNX, "--target", "edge-server", "--out", tmp_path / "out", "--calib", bad, "--no-bench",
                timeout=QUICK)
    assert _one_line(r) == f"error: calibration data {bad} has a corrupt .npy header (unbalanced brackets); save the " \
                           "data again with numpy"
    assert not (tmp_path / "out").exists()


def _aliased_tflite(slots: int = 30_000, rank: int = 50_000) -> bytes:
    """A 320 KB .tflite whose `slots` tensor entries all point at one tensor with a `rank`-long shape."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    b = flatbuffers.Builder(1 << 20)
    s.TensorStartShapeVector(b, rank)
    for _ in range(rank):
        b.PrependInt32(1)
    shape = b.EndVector()
    s.TensorStart(b)
    s.TensorAddShape(b, shape)
    s.TensorAddBuffer(b, 0)
    tensor = s.TensorEnd(b)
    s.SubGraphStartTensorsVector(b, slots)
    for _ in range(slots):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    s.SubGraphStartInputsVector(b, 1)
    b.PrependInt32(0)
    inputs = b.EndVector()
    s.SubGraphStartOutputsVector(b, 1)
    b.PrependInt32(0)
    outputs = b.EndVector()
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensors)
    s.SubGraphAddInputs(b, inputs)
    s.SubGraphAddOutputs(b, outputs)
    sg = s.SubGraphEnd(b)
    s.BufferStart(b)
    buf = s.BufferEnd(b)
    s.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(buf)
    bufs = b.EndVector()
    s.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddSubgraphs(b, sgs)
    s.ModelAddBuffers(b, bufs)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("command", [("inspect",), ("bench", "--runs", "1", "--min-seconds", "0")])
def test_aliased_tflite_tables_cost_linear_work(tmp_path, command):
    model = tmp_path / "alias.tflite"
    model.write_bytes(_aliased_tflite())
    assert model.stat().st_size < 400_000
    r = edgeopt(command[0], model, *command[1:], timeout=QUICK)
    line = _one_line(r)
    assert "offsets alias one table" in line, line


@pytest.mark.parametrize("body", ["x = " + "[" * 5000 + "]" * 5000,
                                  "[" + ".".join(["a"] * 20000) + "]\nk = 1",
                                  'extends = "mobile-cpu"\n[' + ".".join(["runtime"] * 3000) + "]\nk = 1"])
def test_deeply_nested_profile_is_refused(tmp_path, body):
    prof = tmp_path / "deep.toml"
    prof.write_text(body + "\n")
    r = edgeopt("targets", "show", prof, timeout=QUICK)
    assert "nested deeper than 8 levels" in _one_line(r)


@pytest.mark.parametrize("command", [("inspect", "{fifo}.tflite"), ("bench", "{fifo}.onnx"),
                                     ("export-c", "{fifo}.tflite", "--out", "{tmp}/c"), ("mcu", "check", "{zero}"),
                                     ("targets", "show", "{fifo}.toml"), ("bench", str(ONNX), "--input", "{fifo}.npz")])
def test_every_command_refuses_special_files_with_their_kind(tmp_path, command):
    for suffix in (".tflite", ".onnx", ".toml", ".npz"):
        os.mkfifo(tmp_path / f"p{suffix}")
    (tmp_path / "z.tflite").symlink_to("/dev/zero")
    args = [a.format(fifo=tmp_path / "p", zero=tmp_path / "z.tflite", tmp=tmp_path) for a in command]
    line = _one_line(edgeopt(*args, timeout=QUICK))
    assert "not a regular file" in line and ("FIFO" in line or "device" in line), line


def test_keras_archive_bounds(tmp_path):
    """A config.json nested 100,000 deep (RecursionError, exit 1 before) and an archive declaring 5 GB."""
    deep = tmp_path / "deep.keras"
    with zipfile.ZipFile(deep, "w") as zf:
        zf.writestr("config.json", "[" * 100_000 + "]" * 100_000)
        zf.writestr("metadata.json", "{}")
    assert "nested too deeply" in _one_line(edgeopt("inspect", deep, timeout=QUICK))
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", bytes(4096))
    data = bytearray(bomb.read_bytes())
    at = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)  # the weights' central directory entry
    struct.pack_into("<I", data, at + 24, 5 << 30 & 0xFFFFFFFF)  # declares ~1 GB ...
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, 0xFFFFFFF0)  # ... plus ~4 GB for config.json
    bomb.write_bytes(bytes(data))
    assert "zip bomb" in _one_line(edgeopt("inspect", bomb, timeout=QUICK))


@pytest.mark.parametrize("location", ["loop.bin", "w.bin\x00.txt"])
def test_onnx_external_data_loop_or_nul_is_exit_2(tmp_path, location):
    """Found by the structure-aware fuzzer: RuntimeError (symlink loop) and ValueError (NUL byte) were exit 1."""
    import onnx

    (tmp_path / "loop.bin").symlink_to(tmp_path / "loop.bin")
    model = onnx.load(str(ONNX))
    t = model.graph.initializer[0]
    for name in ("float_data", "raw_data"):
        t.ClearField(name)
    t.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "4")):
        e = t.external_data.add()
        e.key, e.value = key, value
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert "not a usable file name" in _one_line(edgeopt("bench", path, "--runs", "1", timeout=QUICK))


def test_tflite_shape_with_an_astronomical_element_count_is_corrupt(tmp_path):
    """Found by the fuzzer: an inflated shape vector made params a 4,000-digit number that could not be printed."""
    from edgeopt.analysis.tflite_graph import read_tflite
    from edgeopt.errors import ModelFileError

    data = _aliased_tflite(slots=1, rank=5000)  # one tensor, shape of 5000 ones ...
    at = data.find((1).to_bytes(4, "little") * 5000)
    bad = data[:at] + (7).to_bytes(4, "little") * 5000 + data[at + 20000:]  # ... now 7 ** 5000 elements
    with pytest.raises(ModelFileError, match=r"impossible shape of rank 5000 \(over 2\*\*40 elements\)"):
        read_tflite(bad)
