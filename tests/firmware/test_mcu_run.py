"""`edgeopt mcu run`: the real firmware image (arm-none-eabi-g++, TFLM + CMSIS-NN) on QEMU, against host TFLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.firmware.conftest import SAMPLES, needs_toolchain

pytestmark = [pytest.mark.tensorflow, pytest.mark.firmware]

SAMPLE_COUNT = 8
BOARDS = {"nrf52840": "cortex-m4f", "stm32h7": "cortex-m7", "alif-e3": "cortex-m55"}


def run_json(cli, model: Path, board: str, tflm: Path, *extra: str) -> dict:
    data = SAMPLES / f"{model.stem}.eval.npz"
    r = cli("mcu", "run", model, "--target", board, "--tflm", tflm, "--data", data, "--samples", str(SAMPLE_COUNT),
            "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> Path:
    """Where the runs keep their image and sources (`mcu run --out`): one folder per (model, board)."""
    return tmp_path_factory.mktemp("kept")


@pytest.fixture(scope="module")
def runs(cli_module, int8_models, tflm, kept):
    """`mcu run --json --out` per (model, board), run once per module: later tests read the same results."""
    done: dict[tuple[str, str], dict] = {}

    def get(model_name: str, board: str) -> dict:
        if (model_name, board) not in done:
            done[model_name, board] = run_json(cli_module, int8_models[model_name], board, tflm,
                                               "--out", str(kept / f"{model_name}-{board}"))
        return done[model_name, board]

    return get


@pytest.fixture(scope="module")
def cli_module():
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    return lambda *args: CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@needs_toolchain
@pytest.mark.parametrize("board", list(BOARDS))
@pytest.mark.parametrize("model_name", ["digits_cnn", "digits_dscnn"])
def test_firmware_is_bit_exact_with_host_tflm(runs, int8_models, model_name, board):
    model = int8_models[model_name]
    d = runs(model_name, board)
    assert d["core"] == BOARDS[board]
    # Every output of every sample equals host TFLM bit for bit.
    assert d["samples"] == SAMPLE_COUNT
    assert d["vs_host_tflm"]["bit_exact"] is True and d["vs_host_tflm"]["mismatched_elements"] == 0
    assert d["vs_litert"]["reference"] == "LiteRT"
    # The 32-bit arena is exact (one byte less fails) and no larger than the host figure + margin reserved.
    a = d["arena"]
    assert a["target_minus_one_fails"] is True
    assert 0 < a["target_bytes"] <= a["reserved_bytes"]
    assert a["tflm_arena_used_bytes"] <= a["target_bytes"]  # TFLM's own figure never over-states it
    assert a["target_bytes"] < a["host_bytes"]  # 32-bit structs are smaller than the 64-bit host's
    # ELF figures: the model flatbuffer is in flash, the arena in RAM, the split adds up.
    e = d["elf"]
    size = model.stat().st_size
    assert e["flash_split"]["model"] >= size and e["flash_bytes"] == sum(e["flash_split"].values())
    assert e["ram_split"]["arena"] == a["reserved_bytes"] and e["ram_bytes"] == sum(e["ram_split"].values())
    assert e["flash_split"]["tflm"] > 20_000 and e["text"] > 0 and e["rodata"] >= size and e["bss"] >= a["reserved_bytes"]
    assert e["flash_bytes"] <= d["flash_limit_bytes"] and e["ram_bytes"] <= d["ram_limit_bytes"]
    # Instructions per inference from SysTick; the estimate uses the board's CPI and clock.
    ins = d["instructions_per_inference"]
    assert 100_000 < ins["min"] <= ins["median"] <= ins["max"] and len(ins["per_sample"]) == SAMPLE_COUNT
    # SysTick under -icount shift=0: 1e9 / clock instructions per tick (40 on MPS2 at 25 MHz, 31.25 on the AN547).
    assert ins["systick_instructions_per_tick"] == (31.25 if board == "alif-e3" else 40.0)
    assert ins["calibrated_instructions_per_tick"] == pytest.approx(ins["systick_instructions_per_tick"], rel=1e-3)
    lat = d["device_latency_estimate_ms"]
    assert lat["label"].startswith("estimate")
    assert lat["median"] == pytest.approx(ins["median"] * lat["cpi"] / (lat["clock_mhz"] * 1e3), rel=1e-3)
    assert 0 < d["stack"]["used_bytes"] < d["stack"]["reserved_bytes"]


@needs_toolchain
@pytest.mark.parametrize("model_name", ["digits_cnn", "digits_dscnn"])
def test_helium_and_dsp_paths_differ(runs, model_name):
    """CMSIS-NN picks its code path from -mcpu: the M55 (MVE) needs far fewer instructions than the M4 (DSP)."""
    m4 = runs(model_name, "nrf52840")["instructions_per_inference"]["median"]
    m55 = runs(model_name, "alif-e3")["instructions_per_inference"]["median"]
    assert m55 < 0.5 * m4


@needs_toolchain
def test_second_build_reuses_cached_library(cli, runs, int8_models, tflm):
    model = int8_models["digits_dscnn"]
    first = runs("digits_dscnn", "nrf52840")
    lib = Path(first["tflm_library"]["path"])
    before = lib.stat()
    second = run_json(cli, model, "nrf52840", tflm)
    after = lib.stat()
    assert second["tflm_library"]["cached"] is True and second["tflm_library"]["compiled_now"] == 0
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert second["tflm_library"]["path"] == str(lib)
    # The same image gives the same numbers.
    assert second["instructions_per_inference"] == first["instructions_per_inference"]
    assert second["elf"] == first["elf"]


@needs_toolchain
def test_a_poisoned_cached_object_is_rebuilt_not_linked_into_the_firmware(cli, runs, int8_models, tflm, tmp_path,
                                                                          monkeypatch):
    """The review's attack end to end: a copy of the M4F library (which the runs above compiled) gets a planted
    debug_log.cc.o (its functions do nothing: TFLM's log would vanish). `mcu run` rebuilds that object before the
    link, says so, links the real one, and the firmware is bit-exact with the same instruction counts."""
    import shutil
    import subprocess

    first = runs("digits_cnn", "nrf52840")
    key = Path(first["tflm_library"]["path"]).parent
    tflm_dir = tmp_path / "xdg" / "edgeopt" / "tflm"
    tflm_dir.mkdir(parents=True)
    copy = Path(shutil.copytree(key, tflm_dir / key.name, symlinks=True))
    obj = copy / "obj" / "tensorflow/lite/micro/cortex_m_generic/debug_log.cc.o"
    good = obj.read_bytes()
    planted = tmp_path / "planted.c"
    planted.write_text("void RegisterDebugLogCallback(void (*cb)(const char*)) { (void)cb; }\n"
                       "void DebugLog(const char* format, void* args) { (void)format; (void)args; }\n"
                       "int DebugVsnprintf(char* b, unsigned n, const char* f, void* a) { (void)b; (void)n; (void)f; "
                       "(void)a; return 0; }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-c",
                    str(planted), "-o", str(obj)], check=True, timeout=60)
    assert obj.read_bytes() != good
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    data = SAMPLES / "digits_cnn.eval.npz"
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "nrf52840", "--tflm", tflm, "--data", data,
            "--samples", str(SAMPLE_COUNT), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["tflm_library"]["notes"] == ["TFLM cache: 1 object failed its hash, rebuilt"]
    assert d["tflm_library"]["compiled_now"] == 1 and d["tflm_library"]["cached"] is False
    assert "warning: TFLM cache: 1 object failed its hash, rebuilt" in r.stderr
    assert obj.read_bytes() == good  # compiled again from the tree
    linked = subprocess.run(["arm-none-eabi-ar", "p", str(copy / "libtflm.a"), "debug_log.cc.o"], capture_output=True,
                            check=True, timeout=60).stdout
    assert linked == good
    assert d["vs_host_tflm"]["bit_exact"] is True
    assert d["instructions_per_inference"] == first["instructions_per_inference"] and d["elf"] == first["elf"]


@needs_toolchain
def test_board_too_small_exits_3_with_elf_numbers(cli, int8_models, tflm, tmp_path):
    # A Blue-Pill-sized board (stm32f103's 64 KB flash, 20 KB RAM) on the M4F core, whose library the other tests cache.
    board = tmp_path / "tiny-m4.toml"
    board.write_text('extends = "nrf52840"\n\n[mcu]\nflash_kb = 64\nram_kb = 20\n')
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", board, "--tflm", tflm, "--samples", "2")
    assert r.exit_code == 3
    err = r.stderr
    assert "firmware flash (ELF, board 'tiny-m4')" in err and "> limit 64 KB" in err
    assert "firmware RAM (ELF, board 'tiny-m4')" in err and "> limit 20 KB" in err
    assert "ELF flash" in err and "model 127" in err  # the split, from the unlimited link
    assert "region" not in err and "overflowed" not in err  # not a linker dump
    assert len(err.strip().splitlines()) == 1


def test_toolchain_missing_names_the_apt_line(cli, int8_models, tflm, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "nrf52840", "--tflm", tflm)
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "arm-none-eabi-g++ not found" in line
    assert "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm" in line


@needs_toolchain
def test_qemu_missing_names_the_apt_line(cli, int8_models, tflm, tmp_path, monkeypatch):
    import shutil

    for tool in ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-ar", "arm-none-eabi-size", "arm-none-eabi-nm"):
        (tmp_path / tool).symlink_to(str(shutil.which(tool)))
    monkeypatch.setenv("PATH", str(tmp_path))
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "nrf52840", "--tflm", tflm)
    assert r.exit_code == 2 and "qemu-system-arm not found" in r.stderr and "apt-get install" in r.stderr


@needs_toolchain
def test_tflm_not_a_tree(cli, int8_models, tmp_path, monkeypatch):
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "nrf52840", "--tflm", tmp_path)
    assert r.exit_code == 2 and "not a TFLite Micro tree" in r.stderr and "create_tflm_tree.py" in r.stderr
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "nrf52840", "--tflm", tmp_path / "nope")
    assert r.exit_code == 2 and "not a folder" in r.stderr
    monkeypatch.delenv("EDGEOPT_TFLM", raising=False)
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "nrf52840")
    assert r.exit_code == 2 and "--tflm DIR or set $EDGEOPT_TFLM" in r.stderr


def test_core_qemu_cannot_emulate(cli, int8_models, tflm):
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "rp2040", "--tflm", tflm)
    assert r.exit_code == 2 and "QEMU cannot emulate cortex-m0plus" in r.stderr and "edgeopt mcu check" in r.stderr
    r = cli("mcu", "run", int8_models["digits_cnn"], "--target", "esp32-s3", "--tflm", tflm)
    assert r.exit_code == 2 and "no Xtensa emulator" in r.stderr


def test_mismatch_names_sample_element_and_values():
    from edgeopt.firmware.results import agree

    dev = [[np.array([[1, 2, 3]], np.int8)], [np.array([[4, 5, 6]], np.int8)]]
    ref = [[np.array([[1, 2, 3]], np.int8)], [np.array([[4, 7, 6]], np.int8)]]
    a = agree(dev, ref, "host TFLM")
    assert not a.bit_exact and a.mismatched_elements == 1 and a.max_abs_diff == 2
    assert a.describe().endswith("first: sample 1, output 0, element [0, 1]: device 5, host TFLM 7")


@needs_toolchain
def test_hang_is_stopped_by_the_timeout_which_is_named(cli, int8_models, tflm):
    # 360 samples of digits_cnn are ~6.7 G instructions: far more than QEMU emulates in one second.
    model = int8_models["digits_cnn"]
    r = cli("mcu", "run", model, "--target", "nrf52840", "--tflm", tflm, "--data", SAMPLES / "digits_cnn.eval.npz",
            "--samples", "360", "--timeout", "1")
    assert r.exit_code == 2
    assert "did not finish on mps2-an386 within the 1 s limit" in r.stderr and "--timeout" in r.stderr


@needs_toolchain
def test_hard_fault_is_reported_with_the_pc(int8_models, tflm, tmp_path, monkeypatch):
    """A harness that faults (a store to an unmapped address) is stopped by the HardFault handler, which names the PC."""
    from edgeopt.errors import ModelFileError
    from edgeopt.firmware import image
    from edgeopt.firmware.cores import core_spec
    from edgeopt.firmware.library import ensure_library
    from edgeopt.firmware.qemu import run_qemu
    from edgeopt.firmware.results import parse_report
    from edgeopt.firmware.toolchain import find_qemu, find_toolchain
    from edgeopt.firmware.tree import find_tree

    build = int8_models["digits_cnn"].parent
    for name in ("g_model.h", "g_model.cc"):
        (tmp_path / name).write_bytes((build / name).read_bytes())
    real = image.main_cc
    monkeypatch.setattr(image, "main_cc", lambda device: real(device).replace(
        "  RegisterDebugLogCallback(log_line);", "  *(volatile uint32_t*)0xF0000000u = 1;\n  RegisterDebugLogCallback(log_line);"))
    spec, tc = core_spec("cortex-m4f"), find_toolchain()
    tree = find_tree(tflm)
    img = image.build_image(tmp_path, spec, tc, tree, ensure_library(spec, tc, tree), flash_bytes=1 << 20,
                            ram_bytes=256 << 10, profile="test")
    assert spec.qemu is not None
    run = run_qemu(find_qemu(), spec.qemu, img.elf, tmp_path, 60)
    with pytest.raises(ModelFileError, match=r"hard-faulted on mps2-an386 at pc=0x[0-9a-f]{8} .*CFSR=0x[0-9a-f]{8}"):
        parse_report(run, spec.qemu, 1)


@needs_toolchain
def test_kernel_prepare_refusal_on_the_device_is_named(int8_models, tflm, tmp_path):
    """A model CMSIS-NN's conv refuses in Prepare, run on the device: the kernel and its message, not "arena too small"."""
    from edgeopt.analysis.tflite_graph import read_tflite
    from edgeopt.errors import KernelPrepareError
    from edgeopt.firmware import image
    from edgeopt.firmware.cores import core_spec
    from edgeopt.firmware.library import ensure_library
    from edgeopt.firmware.qemu import run_qemu
    from edgeopt.firmware.results import parse_report
    from edgeopt.firmware.toolchain import find_qemu, find_toolchain
    from edgeopt.firmware.tree import find_tree
    from edgeopt.mcu.c_export import render
    from tests.mcu.models import wrong_per_channel_scales

    bad = wrong_per_channel_scales(int8_models["digits_cnn"], tmp_path / "bad.tflite")
    header, source, _ = render(bad.read_bytes(), read_tflite(bad), "g_model", arena_bytes=64 << 10, arena_measured=0,
                               margin_note="test", source_name=bad.name, version="0")
    (tmp_path / "g_model.h").write_text(header)
    (tmp_path / "g_model.cc").write_text(source)
    spec, tc = core_spec("cortex-m4f"), find_toolchain()
    tree = find_tree(tflm)
    img = image.build_image(tmp_path, spec, tc, tree, ensure_library(spec, tc, tree), flash_bytes=1 << 20,
                            ram_bytes=256 << 10, profile="test")
    assert spec.qemu is not None
    run = run_qemu(find_qemu(), spec.qemu, img.elf, tmp_path, 60)
    assert "EDGEOPT arena_too_small" in run.stdout  # the harness tried the full arena only: no bisection
    with pytest.raises(KernelPrepareError, match=r"firmware's CONV_2D kernel refused the model in Prepare on "
                                                 r"mps2-an386 \(operator 0\): .*scale->size.*not an arena shortage"):
        parse_report(run, spec.qemu, 1)


@needs_toolchain
def test_kept_files_are_readable_and_build_time_is_not_negative(runs, kept):
    """The image and sources kept under --out get a new file's usual mode (0644 under umask 022; they were 0600,
    from mkstemp), and the firmware build time excludes only the library compiles of its own window (a cold TFLM
    library once made it -191.09 s: its framework compile, before the window, was subtracted too)."""
    import os

    from edgeopt.firmware.run import KEPT

    d = runs("digits_cnn", "nrf52840")
    mask = os.umask(0o022)
    os.umask(mask)
    folder = kept / "digits_cnn-nrf52840"
    assert sorted(p.name for p in folder.iterdir()) == sorted(KEPT)
    for name in KEPT:
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert d["build_seconds"] >= 0 and d["tflm_library"]["compile_seconds"] >= 0
