"""Item 3 of issue 12: the files edgeopt writes are its own: no planted lock file, no input overwritten,
and a commit that fails half-way puts the previous build back."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from edgeopt.errors import OutputError
from tests.robustness.conftest import ROOT, edgeopt, error_line

pytestmark = pytest.mark.tensorflow

SAMPLES = ROOT / "sample_models"


def _project(tmp_path):
    """An ONNX model with its data in a folder (builds for edge-server in seconds, no TensorFlow)."""
    work = tmp_path / "proj"
    work.mkdir()
    for name in ("digits_mlp.onnx", "digits_mlp.calib.npz", "digits_mlp.eval.npz"):
        shutil.copy(SAMPLES / name, work / name)
    return work


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(r) -> str:
    return error_line(r)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_planted_lock_file_is_refused_and_its_target_untouched(tmp_path, kind):
    work = _project(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = work / "out"
    out.mkdir()
    lock = out / ".edgeopt-lock"
    {"symlink": lambda: lock.symlink_to(victim), "hardlink": lambda: os.link(victim, lock),
     "fifo": lambda: os.mkfifo(lock)}[kind]()
    r = edgeopt("build", work / "digits_mlp.onnx", "--target", "edge-server", "--out", out, "--no-bench", timeout=120)
    line = _one_line(r)
    assert "lock file" in line and {"symlink": "symbolic link", "hardlink": "hard links",
                                    "fifo": "not a regular file"}[kind] in line, line
    assert victim.read_text() == "precious\n"
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("out", [".", "{work}", "{work}/."])
def test_build_into_the_models_own_folder_cannot_replace_it(tmp_path, out):
    """`edgeopt build m.onnx --out .` replaced the source model with its int8 version."""
    work = _project(tmp_path)
    before = _sha(work / "digits_mlp.onnx")
    r = edgeopt("build", "digits_mlp.onnx", "--target", "edge-server", "--out", out.format(work=work), "--no-bench",
                cwd=work, timeout=120)
    line = _one_line(r)
    assert "would write digits_mlp.onnx over the model digits_mlp.onnx" in line, line
    assert _sha(work / "digits_mlp.onnx") == before
    assert sorted(p.name for p in work.iterdir()) == ["digits_mlp.calib.npz", "digits_mlp.eval.npz", "digits_mlp.onnx"]


def test_an_artifact_hard_linked_to_the_calibration_data_is_refused(tmp_path):
    work = _project(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    os.link(work / "digits_mlp.calib.npz", out / "report.md")
    r = edgeopt("build", work / "digits_mlp.onnx", "--target", "edge-server", "--out", out, "--no-bench", timeout=120)
    assert "would write report.md over the calibration data" in _one_line(r)


def test_prune_and_cluster_refuse_out_equal_to_the_model(tmp_path):
    from edgeopt.cluster.clusterer import ClusterSpec, cluster_keras_file

    model = tmp_path / "m.keras"
    shutil.copy(SAMPLES / "digits_cnn.keras", model)
    before = _sha(model)
    with pytest.raises(OutputError, match="is the model"):
        cluster_keras_file(model, model, ClusterSpec())
    r = edgeopt("prune", model, "--out", model, "--ratio", "0.5", "--no-finetune")
    assert "is the model" in _one_line(r)
    assert _sha(model) == before


def test_sparsify_and_qat_refuse_out_equal_to_an_input(tmp_path):
    """sparsify and qat wrote their .keras over the input model (or its data) before the shared Keras-job checks."""
    import numpy as np

    model = tmp_path / "m.keras"
    shutil.copy(SAMPLES / "digits_cnn.keras", model)
    train = tmp_path / "t.keras"  # a data path named like a model, to be overwritten by --out
    np.savez(tmp_path / "t.npz", x=np.zeros((4, 8, 8, 1), np.float32), y=np.zeros(4, np.int64))
    (tmp_path / "t.npz").rename(train)
    before = _sha(model), _sha(train)
    for args in (("sparsify", model, "--out", model, "--sparsity", "0.5", "--no-finetune", "--no-measure"),
                 ("qat", model, "--train", train, "--out", model),
                 ("qat", model, "--train", train, "--out", train)):
        r = edgeopt(*args)
        assert r.returncode == 2, (args, r.stderr)
        line = _one_line(r)
        assert "is the model" in line or "is the training data" in line, line
    assert (_sha(model), _sha(train)) == before


def _chattr(flag: str, path) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(["chattr", flag, str(path)],
                                                                  capture_output=True).returncode == 0


def test_a_commit_that_fails_half_way_rolls_back(tmp_path):
    """A rename that fails after others succeeded (here: an immutable report.json) puts every file back:
    `edgeopt verify` passes on the previous build."""
    work = _project(tmp_path)
    out = tmp_path / "out"
    args = ("build", work / "digits_mlp.onnx", "--target", "edge-server", "--out", out, "--no-bench")
    assert edgeopt(*args, timeout=120).returncode == 0
    before = {p.name: _sha(p) for p in out.iterdir()}
    if not _chattr("+i", out / "report.json"):
        pytest.skip("chattr +i is not available here (needs root and ext4/xfs)")
    try:
        r = edgeopt(*args, "--force", timeout=120)
    finally:
        _chattr("-i", out / "report.json")
    line = _one_line(r)
    assert "cannot move report.json" in line and "previous files were put back" in line, line
    assert {p.name: _sha(p) for p in out.iterdir()} == before  # no staging folder, lock or backup left
    assert edgeopt("verify", out).returncode == 0


def test_disk_full_names_the_folder_and_the_bytes(tmp_path):
    """ENOSPC was an internal error (exit 1); now one line naming --out and the bytes needed, nothing left."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        out = small / "out"
        r = edgeopt("build", SAMPLES / "digits_mlp.onnx", "--target", "edge-server", "--out", out, "--no-bench",
                    env_extra={"COLUMNS": "1000"}, timeout=120)
        line = error_line(r)
        assert f"no space left to write into {out} (" in line and "bytes needed" in line, line
        assert not out.exists()  # the refused build removed the folder it created
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


@pytest.fixture()
def full_disk(tmp_path):
    """A 16 KiB tmpfs with no byte free (root only; skipped elsewhere)."""
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with (full / "filler").open("wb") as fh, pytest.raises(OSError):
            fh.write(bytes(1 << 20))  # until ENOSPC
        assert shutil.disk_usage(full).free == 0
        yield full
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)


def test_disk_full_in_export_c_names_the_folder_and_the_bytes(full_disk, tmp_path):
    """Issue 21 item 6: `export-c` said "cannot write into DIR: No space left on device" (no bytes)."""
    from tests.bench import bench_models as bm

    model = bm.tflite_mlp(tmp_path / "m.tflite", int8=True)
    out = full_disk / "c"
    r = edgeopt("export-c", model, "--out", out, timeout=120)
    line = error_line(r)
    assert line.startswith(f"error: no space left to write into {out} (") and " bytes needed, 0 free); " in line, line
    needed = int(line.split(" (")[1].split(" bytes")[0].replace(",", ""))
    assert needed > model.stat().st_size  # the C array of the model is larger than the model
    assert not list(out.iterdir())  # no temporary file left


def test_disk_full_in_the_firmware_copy_names_the_folder_and_the_bytes(full_disk, tmp_path):
    from edgeopt.firmware.run import KEPT, _keep

    work = tmp_path / "work"
    work.mkdir()
    for i, name in enumerate(KEPT):
        (work / name).write_bytes(bytes(1000 + i))
    out = full_disk / "fw"
    with pytest.raises(OutputError) as err:
        _keep(work, out)
    assert str(err.value) == (f"no space left to write into {out} ({sum(1000 + i for i in range(len(KEPT))):,} bytes "
                              "needed, 0 free); free some space or choose another output folder")
    assert not list(out.iterdir())


def test_disk_full_nothing_mapped_names_the_folder_or_the_temporary_folder(full_disk, tmp_path, capsys,
                                                                           monkeypatch):
    """The CLI's last resort: shutil.copyfile names the source first; the message names the destination's folder
    and the bytes free; a write that names no file names the temporary folder."""
    import tempfile

    import typer

    from edgeopt.cli.errors import handled

    src = tmp_path / "big"
    src.write_bytes(bytes(100_000))
    with pytest.raises(typer.Exit) as ex, handled():
        shutil.copyfile(src, full_disk / "copy")
    assert ex.value.exit_code == 2
    assert capsys.readouterr().err == (f"error: no space left to write into {full_disk} (0 bytes free); free some "
                                       "space or choose another output folder\n")
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    with pytest.raises(typer.Exit) as ex, handled(), (full_disk / "unnamed").open("wb") as fh:
        fh.write(bytes(100_000))
    assert ex.value.exit_code == 2
    assert capsys.readouterr().err == (
        f"error: no space left on a device (the failed write named no file; the temporary folder {full_disk} has "
        "0 bytes free); free some space, set TMPDIR to a folder with room, or choose another output folder\n")
