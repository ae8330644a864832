"""Security rules: no pickle, confined profile `extends` and outputs, private temp files, probed runtimes."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest

from edgeopt.errors import DataError, ModelFileError, OutputError, ProfileError
from tests.robustness.conftest import ROOT, edgeopt

pytestmark = pytest.mark.tensorflow

# The one unpickling: the sandbox child reads its job from the parent edgeopt process, before any model code runs
# (the other way, child to parent, is JSON only: edgeopt/sandbox/runner.py).
TRUSTED_PICKLE = {"edgeopt/sandbox/child.py"}


def test_numpy_never_unpickles():
    offenders = []
    for path in (ROOT / "edgeopt").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if str(path.relative_to(ROOT)) in TRUSTED_PICKLE and "pickle.loads(" in line:
                continue
            if re.search(r"allow_pickle\s*=\s*True|\bpickle\.loads?\(|np\.load\((?![^)]*allow_pickle=False)", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_pickled_npz_is_refused(tmp_path):
    from edgeopt.data.datasets import load_dataset

    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        load_dataset(tmp_path / "obj.npz", "calibration")


@pytest.mark.parametrize("ref", ["../x.toml", "/etc/hosts", "./../x.toml", "./sub/../../x.toml", "./link.toml"])
def test_extends_cannot_escape(tmp_path, ref):
    from edgeopt.profiles import load_profile

    folder = tmp_path / "p"
    folder.mkdir()
    (tmp_path / "x.toml").write_text('description = "outside"\n')
    (folder / "link.toml").symlink_to(tmp_path / "x.toml")
    (folder / "mine.toml").write_text(f'extends = "{ref}"\n')
    with pytest.raises(ProfileError):
        load_profile(str(folder / "mine.toml"))


def test_staging_paths_are_confined_and_private(tmp_path):
    from edgeopt.atomic import Staging, prepare_output, unlock_output, write_bytes_atomic

    out = prepare_output(tmp_path / "out")
    with Staging(out) as stage:
        assert stat.S_IMODE(stage.dir.stat().st_mode) == 0o700
        for bad in ("../escape.bin", "/etc/passwd", "a/../../b"):
            with pytest.raises(OutputError):
                stage.path(bad)
        p = write_bytes_atomic(stage.path("a.bin"), b"x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o600  # private until committed
        moved = stage.commit(["a.bin"])
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(moved[0].stat().st_mode) == 0o666 & ~mask
    assert sorted(x.name for x in out.iterdir()) == ["a.bin"]  # staging folder and lock file gone
    unlock_output(out)


def test_lock_refuses_a_second_holder(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys,time; sys.path.insert(0, sys.argv[1]);"
                               "from edgeopt.atomic import prepare_output; prepare_output(sys.argv[2]);"
                               "print('held', flush=True); time.sleep(30)", str(ROOT), str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        from edgeopt.atomic import prepare_output

        with pytest.raises(OutputError, match=rf"another edgeopt build is writing .* \(pid {holder.pid}\)"):
            prepare_output(out)
    finally:
        holder.kill()
        holder.wait()
    prepare_output(out)  # the kernel released the dead holder's lock
    from edgeopt.atomic import unlock_output

    unlock_output(out)


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, cli):
    """Every path that opens an .onnx (bench, inspect, sensitivity, build, quantization) refuses it first."""
    import onnx
    from onnx import TensorProto, helper

    t = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../../etc/passwd"), ("offset", "0"), ("length", "4")):
        e = t.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [t])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    from edgeopt.runtime.verify_onnx import verify_onnx

    with pytest.raises(ModelFileError, match="outside the model's folder"):
        verify_onnx(path)
    r = edgeopt("bench", path)
    assert r.returncode == 2 and "outside the model's folder" in r.stderr
    from edgeopt.profiles.schema import Scheme
    from edgeopt.quantize.onnx import OnnxRecipe, quantize_onnx
    from edgeopt.quantize.sensitivity import sensitivity_onnx

    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.ones((4, 1), np.float32))
    for args in (("inspect", path), ("inspect", path, "--sensitivity", "--calib", calib),
                 ("build", path, "--target", "edge-server", "--out", tmp_path / "out", "--calib", calib, "--no-bench")):
        r = cli(*args)
        assert r.exit_code == 2 and "outside the model's folder" in r.stderr, (args, r.stderr)
    assert not (tmp_path / "out").exists()
    for scheme in Scheme:  # every ONNX quantization path opens the file through the guard first
        if scheme is Scheme.INT16X8:
            continue
        with pytest.raises(ModelFileError, match="outside the model's folder"):
            quantize_onnx(path, tmp_path / "q.onnx", OnnxRecipe(scheme, calibration=np.ones((4, 1), np.float32)))
    with pytest.raises(ModelFileError, match="outside the model's folder"):
        sensitivity_onnx(path, np.ones((4, 1), np.float32))


def test_native_crash_in_litert_is_contained(mobile_build, tmp_path):
    """A RESHAPE whose shape input is marked omitted passes every structural check and segfaults LiteRT:
    the child-process probe turns that into exit 2 (found by the fuzzer)."""
    from edgeopt.analysis.tflite_graph import read_tflite

    data = bytearray((mobile_build / "digits_dscnn.tflite").read_bytes())
    g = read_tflite(bytes(data))
    op = next(o for o in g.operators if o.op == "RESHAPE" and len(o.inputs) == 2)
    shape_idx = op.inputs[1].to_bytes(4, "little", signed=True)
    # rewrite the operator's inputs vector [data, shape] -> [data, -1]
    pair = op.inputs[0].to_bytes(4, "little", signed=True) + shape_idx
    at = bytes(data).find((2).to_bytes(4, "little") + pair)
    assert at > 0
    data[at + 8 : at + 12] = (-1).to_bytes(4, "little", signed=True)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(data))
    r = edgeopt("bench", bad, "--runs", "1", "--min-seconds", "0", "--warmup-seconds", "0")
    assert r.returncode == 2, r.stderr
    assert "crashed (SIGSEGV)" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = edgeopt("inspect", bad)  # pure Python: reads it fine
    assert r.returncode == 0, r.stderr


def test_error_messages_stay_on_one_line():
    from edgeopt.cli.errors import one_line

    assert one_line("tensor 'a\nb\r\x00c' is bad") == "tensor 'a\\nb\\r\\x00c' is bad"
    assert one_line("plain message: ok") == "plain message: ok"


def test_absurd_rank_is_abbreviated_in_the_message(mobile_build, tmp_path):
    """A corrupt file can claim a tensor of rank 500+; the message names it without printing every dimension
    (found by the long fuzz run)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    data = (mobile_build / "digits_dscnn.tflite").read_bytes()
    m = s.ModelT.InitFromPackedBuf(data, 0)
    m.subgraphs[0].tensors[3].shape = [64, -17982] + [0] * 600
    m.subgraphs[0].tensors[3].shapeSignature = None
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    bad = tmp_path / "rank.tflite"
    bad.write_bytes(bytes(b.Output()))
    r = edgeopt("bench", bad, "--runs", "1", "--min-seconds", "0", "--warmup-seconds", "0")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and len(line) < 400, line
    assert "negative dimension [64, -17982, 0, 0, 0, 0, 0, ... 0] (rank 602)" in line
