"""examples/firmware: make and cmake run `edgeopt build` as a build step, then `edgeopt mcu run` (the real image for
the board's Cortex-M, run under QEMU, kept in build/firmware), then compile and run a host C++ program."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.firmware.conftest import needs_toolchain, tflm_dir

pytestmark = [pytest.mark.tensorflow, pytest.mark.firmware]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "firmware"
EDGEOPT = f"{shlex.quote(sys.executable)} -m edgeopt"


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory) -> Path:
    import keras

    from tests.mcu.models import small_cnn

    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("fw_model")
    path = d / "tiny.keras"
    small_cnn(keras, shape=(8, 8, 1), classes=3).save(path)
    np.savez(d / "tiny.calib.npz", x=np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"):  # run as a fresh make, not a sub-make
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _fw_env() -> dict[str, str]:
    return _env() | {"EDGEOPT_TFLM": str(tflm_dir())}


def _check_image(folder: Path, log: str) -> None:
    """The real firmware image was linked, run under QEMU and matched host TFLM."""
    elf = folder / "app.elf"
    assert elf.read_bytes()[:4] == b"\x7fELF" and (folder / "app.map").is_file() and (folder / ".ran").is_file()
    assert "bit-exact" in log and "mps2-an386" in log


def _check_output(text: str) -> None:
    assert "aligned16=yes" in text and text.strip().endswith("OK")
    assert "input0 dtype=int8 dims=4 shape=1,8,8,1," in text


@needs_toolchain
@pytest.mark.skipif(not (shutil.which("make") and shutil.which("g++")), reason="make/g++ not installed")
def test_make_builds_and_reruns_only_on_change(tiny_keras, tmp_path: Path):
    args = ["make", "-f", str(EXAMPLE / "Makefile"), f"MODEL={tiny_keras}", "BOARD=nrf52840", f"EDGEOPT={EDGEOPT}"]
    first = subprocess.run([*args, "run"], cwd=tmp_path, env=_fw_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    _check_output(first.stdout)
    _check_image(tmp_path / "build" / "firmware", first.stdout)
    header = tmp_path / "build" / "model" / "g_model.h"
    assert "AddConv2D" in header.read_text()
    again = subprocess.run(args, cwd=tmp_path, env=_fw_env(), capture_output=True, text=True)
    assert again.returncode == 0 and "edgeopt build" not in again.stdout and "mcu run" not in again.stdout
    assert "Nothing to be done" in again.stdout
    # touching the model re-runs the model step
    time.sleep(1.1)
    tiny_keras.touch()
    dry = subprocess.run([*args, "-n"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert " build " in dry.stdout
    # ...and so does new calibration data next to it
    subprocess.run(args, cwd=tmp_path, env=_fw_env(), capture_output=True, text=True, check=True)
    time.sleep(1.1)
    tiny_keras.with_name("tiny.calib.npz").touch()
    dry = subprocess.run([*args, "-n"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert " build " in dry.stdout


@needs_toolchain
@pytest.mark.skipif(not (shutil.which("make") and shutil.which("g++")), reason="make/g++ not installed")
def test_make_fails_when_the_image_does_not_fit_the_board(tiny_keras, tmp_path: Path):
    # The model (a few KB) fits a 32 KB-flash board by the host estimate (runtime_flash_kb = 0); the linked ELF does not.
    board = tmp_path / "tiny-flash.toml"
    board.write_text('extends = "nrf52840"\n\n[mcu]\nflash_kb = 32\nruntime_flash_kb = 0\n')
    args = ["make", "-f", str(EXAMPLE / "Makefile"), f"MODEL={tiny_keras}", f"PROFILE={board}", f"EDGEOPT={EDGEOPT}"]
    r = subprocess.run(args, cwd=tmp_path, env=_fw_env(), capture_output=True, text=True)
    assert r.returncode != 0 and "mcu run" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert "firmware flash (ELF, board 'tiny-flash')" in r.stderr and "> limit 32 KB" in r.stderr
    assert (tmp_path / "build" / "model" / ".built").is_file()  # the model step passed; the image step failed
    assert not (tmp_path / "build" / "firmware" / ".ran").exists()  # so the next make tries again


@needs_toolchain
@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")), reason="cmake/g++ not installed")
def test_cmake_builds(tiny_keras, tmp_path: Path):
    build = tmp_path / "b"
    conf = subprocess.run(["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DMODEL={tiny_keras}", f"-DEDGEOPT={EDGEOPT}"],
                          env=_fw_env(), capture_output=True, text=True)
    assert conf.returncode == 0, conf.stdout[-2000:] + conf.stderr[-2000:]
    b = subprocess.run(["cmake", "--build", str(build)], env=_fw_env(), capture_output=True, text=True)
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    _check_image(build / "firmware", b.stdout)
    run = subprocess.run([str(build / "firmware_host")], capture_output=True, text=True)
    assert run.returncode == 0
    _check_output(run.stdout)
    again = subprocess.run(["cmake", "--build", str(build)], env=_fw_env(), capture_output=True, text=True)
    assert again.returncode == 0 and "edgeopt build" not in again.stdout and "mcu run" not in again.stdout
    time.sleep(1.1)
    tiny_keras.with_name("tiny.calib.npz").touch()  # new calibration data re-runs the model step
    third = subprocess.run(["cmake", "--build", str(build)], env=_fw_env(), capture_output=True, text=True)
    assert third.returncode == 0 and "edgeopt build" in third.stdout, third.stdout[-2000:]


def _checkout_with_venv(tmp_path: Path) -> tuple[Path, Path]:
    """The example inside a repo layout whose .venv/bin/edgeopt runs this edgeopt (what `make demo` leaves)."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo / "examples" / "firmware")
    shutil.copytree(ROOT / "targets", repo / "targets")
    exe = repo / ".venv" / "bin" / "edgeopt"
    exe.parent.mkdir(parents=True)
    exe.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m edgeopt "$@"\n')
    exe.chmod(0o755)
    return repo, exe


def _env_without_edgeopt_on_path(*tools: str) -> dict[str, str]:
    env = _env()
    env["PATH"] = os.pathsep.join(dict.fromkeys(str(Path(shutil.which(t) or "/usr/bin").parent) for t in tools))
    assert shutil.which("edgeopt", path=env["PATH"]) is None
    return env


@pytest.mark.skipif(not (shutil.which("make") and shutil.which("g++")), reason="make/g++ not installed")
def test_make_finds_edgeopt_in_the_repo_venv(tiny_keras, tmp_path: Path):
    repo, exe = _checkout_with_venv(tmp_path)
    env = _env_without_edgeopt_on_path("make", "g++", "sh")
    args = ["make", "-n", "-f", str(repo / "examples" / "firmware" / "Makefile"), f"MODEL={tiny_keras}"]
    dry = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert f"{exe} build {tiny_keras} --target " in dry.stdout
    exe.unlink()  # neither on PATH nor in .venv: one line saying what to do, not "command not found"
    missing = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "edgeopt not found on PATH or in" in missing.stderr
    assert "make demo" in missing.stderr


@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")), reason="cmake/g++ not installed")
def test_cmake_finds_edgeopt_in_the_repo_venv(tiny_keras, tmp_path: Path):
    repo, exe = _checkout_with_venv(tmp_path)
    env = _env_without_edgeopt_on_path("cmake", "g++", "make", "sh")
    src = repo / "examples" / "firmware"
    conf = subprocess.run(["cmake", "-S", str(src), "-B", str(tmp_path / "b"), f"-DMODEL={tiny_keras}"],
                          env=env, capture_output=True, text=True)
    assert conf.returncode == 0, conf.stdout[-2000:] + conf.stderr[-2000:]
    assert f"EDGEOPT:STRING={exe}" in (tmp_path / "b" / "CMakeCache.txt").read_text()
    exe.unlink()
    missing = subprocess.run(["cmake", "-S", str(src), "-B", str(tmp_path / "c"), f"-DMODEL={tiny_keras}"],
                             env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "edgeopt not found on PATH or in the repo's .venv" in missing.stderr
