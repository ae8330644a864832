"""`edgeopt build --firmware`: the firmware stage of a build (one firmware build in this file: it is the slow part)."""

from __future__ import annotations

import json

import pytest

from edgeopt.report.compare import records
from edgeopt.report.schema import Report
from tests.firmware.conftest import SAMPLES, needs_toolchain

pytestmark = [pytest.mark.tensorflow, pytest.mark.firmware]

FW_SAMPLES = 4


@pytest.fixture(scope="module")
def fw_build(tmp_path_factory, tflm):
    """digits_cnn built for nrf52840 (Cortex-M4F) with the firmware stage on: (CLI result, output folder)."""
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    out = tmp_path_factory.mktemp("fw_build") / "out"
    r = CliRunner().invoke(app, ["build", str(SAMPLES / "digits_cnn.keras"), "--target", "nrf52840", "--out", str(out),
                                 "--calib", str(SAMPLES / "digits_cnn.calib.npz"),
                                 "--eval", str(SAMPLES / "digits_cnn.eval.npz"), "--no-bench", "--firmware",
                                 "--firmware-samples", str(FW_SAMPLES), "--tflm", str(tflm)],
                           env={"COLUMNS": "250"}, catch_exceptions=False)
    return r, out


@needs_toolchain
def test_build_firmware_stage_is_typed_and_bit_exact(fw_build):
    r, out = fw_build
    assert r.exit_code == 0, r.output
    report = Report.model_validate_json((out / "report.json").read_text())
    assert report.schema_version == "2.7"
    f = report.stages.firmware
    assert f is not None and report.stages.mcu is not None
    assert f.model == "digits_cnn.tflite" and f.core == "cortex-m4f" and f.qemu_machine == "mps2-an386"
    assert f.samples == FW_SAMPLES and f.sample_source == "eval data"
    # The image: the model flatbuffer is in flash, the arena in RAM, the parts add up, within the board.
    e = f.elf
    model_bytes = (out / "digits_cnn.tflite").stat().st_size
    assert e.text > 0 and e.rodata >= model_bytes and e.bss >= f.arena.reserved_bytes
    assert e.flash_split["model"] >= model_bytes and e.flash_bytes == sum(e.flash_split.values())
    assert e.ram_split["arena"] == f.arena.reserved_bytes and e.ram_bytes == sum(e.ram_split.values())
    assert f.flash_limit_bytes == 1024 * 1024 and f.ram_limit_bytes == 256 * 1024
    # The 32-bit arena is exact and smaller than the 64-bit host's.
    a = f.arena
    assert a.target_minus_one_fails is True and 0 < a.target_bytes < a.host_bytes
    assert a.host_bytes == report.stages.mcu.arena_bytes
    ins = f.instructions
    assert 100_000 < ins.min <= ins.median <= ins.max and len(ins.per_sample) == FW_SAMPLES
    lat = f.device_latency
    assert lat is not None and lat.cpi == 1.3 and lat.clock_mhz == 64 and lat.cpi_source and lat.clock_source
    assert lat.median_ms == pytest.approx(ins.median * 1.3 / 64e3, rel=1e-3)
    assert lat.method.startswith("estimate")
    assert f.bit_exact is True and f.vs_host_tflm.bit_exact and f.vs_host_tflm.mismatched_elements == 0
    assert f.vs_litert.reference == "LiteRT"
    # ELF flash and RAM replace the model + runtime_flash_kb figures in the board budgets.
    budgets = {b.name: b for b in report.budgets}
    assert budgets["max_flash_bytes"].actual == e.flash_bytes and budgets["max_flash_bytes"].unit == "bytes (firmware ELF)"
    assert budgets["max_ram_bytes"].actual == e.ram_bytes and budgets["max_ram_bytes"].limit == 256 * 1024
    assert all(b.ok for b in report.budgets) and report.ok
    # The published schema describes the section.
    raw = json.loads((out / "report.json").read_text())
    assert raw["stages"]["firmware"]["instructions"]["median"] == ins.median


@needs_toolchain
def test_build_firmware_estimate_is_the_primary_device_latency(fw_build):
    r, out = fw_build
    assert r.exit_code == 0, r.output
    report = Report.model_validate_json((out / "report.json").read_text())
    f = report.stages.firmware
    assert f is not None and f.device_latency is not None
    shown = f"{f.device_latency.median_ms:.4g} ms, a firmware instruction-count estimate"
    console = " ".join(r.stdout.split())
    assert f"device latency: {shown}" in console
    assert (f"firmware on cortex-m4f (mps2-an386): ELF flash {f.elf.flash_bytes / 1024:.1f} KiB" in console
            and f"arena {f.arena.target_bytes:,} B on the 32-bit target (host {f.arena.host_bytes:,} B)" in console
            and f"bit-exact with host TFLM on {f.samples} samples" in console)
    md = (out / "report.md").read_text()
    assert f"Device latency: {shown}" in md and "## Firmware (emulated Cortex-M)" in md
    assert f"median {f.instructions.median:,}" in md and f"{f.arena.target_bytes:,} B (one byte less fails: yes)" in md
    assert "MAC/s" in md  # the MAC-rate estimate stays in the MCU section, labelled
    rec = records([report])[0]
    assert rec["device ms (est.)"] == pytest.approx(f.device_latency.median_ms)
    assert rec["device est. by"] == "firmware instruction count"


def test_firmware_run_needs_an_mcu_profile(tmp_path):
    from edgeopt.errors import EdgeoptError
    from edgeopt.profiles import load_profile

    p = tmp_path / "phone.toml"
    p.write_text('extends = "mobile-cpu"\n\n[firmware]\nrun = true\n')
    with pytest.raises(EdgeoptError, match="firmware.run = true needs device_class = 'embedded-mcu'"):
        load_profile(str(p))


def test_build_firmware_on_a_board_qemu_cannot_emulate_exits_2_before_any_work(cli, tflm, tmp_path):
    out = tmp_path / "out"
    r = cli("build", SAMPLES / "digits_cnn.keras", "--target", "esp32-s3", "--out", out, "--no-bench", "--firmware",
            "--tflm", tflm)
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "esp32-s3" in line
    assert not out.exists()  # refused before the model was even loaded


def test_build_firmware_with_a_non_mcu_target_exits_2_before_any_work(cli, tmp_path):
    """--firmware used to be ignored silently for a phone or server target."""
    out = tmp_path / "out"
    r = cli("build", SAMPLES / "digits_cnn.keras", "--target", "mobile-cpu", "--out", out, "--no-bench", "--firmware")
    assert r.exit_code == 2
    assert r.stderr.strip() == ("error: --firmware builds a Cortex-M image, but target 'mobile-cpu' is mobile-cpu; "
                                "use an embedded-mcu target (edgeopt targets list) or drop --firmware")
    assert not out.exists()


def test_an_image_too_big_for_the_board_is_a_broken_elf_budget():
    """A firmware link that does not fit (the stage's BudgetExceededError) becomes failed budgets with the ELF
    numbers, in place of the model + runtime_flash_kb figures."""
    from edgeopt.errors import BudgetViolation
    from edgeopt.pipeline.reporting import _budgets
    from edgeopt.profiles import load_profile
    from edgeopt.report import schema as rs

    profile = load_profile("nrf52840").profile
    art = rs.ArtifactInfo(path="m.tflite", format="tflite", scheme="int8", bytes=10_000, sha256="0" * 64)
    opt = rs.Variant(artifact=art, accuracy=None, latency_ms=None)
    broke = (BudgetViolation("firmware flash (ELF, board 'tiny')", 64.0, 151.2, "KB"),)
    budgets, _ = _budgets(profile, opt, None, None, None, broke)
    failed = [b for b in budgets if b.ok is False]
    assert [(b.name, b.limit, b.actual, b.unit) for b in failed] == [("firmware flash (ELF, board 'tiny')", 64.0, 151.2, "KB")]
    assert not any(b.name.startswith("max_flash") for b in budgets)  # no runtime_flash_kb-based figure beside it


@needs_toolchain
def test_a_firmware_mismatch_is_not_ok_although_no_budget_broke(fw_build):
    """`search` calls a trial feasible by BuildResult.ok: it is the report's verdict, which counts a firmware output
    that differs from host TFLM (it once was `not violations`, and a mismatch breaks no budget)."""
    from edgeopt.pipeline.build import BuildResult
    from edgeopt.pipeline.reporting import verdict

    r, out = fw_build
    report = Report.model_validate_json((out / "report.json").read_text())
    good = BuildResult(report, out, ())
    assert good.ok and good.failures() == () and report.ok
    fw = report.stages.firmware
    assert fw is not None
    differs = fw.vs_host_tflm.model_copy(update={"bit_exact": False, "mismatched_elements": 1,
                                                 "description": "differs at sample 0, output 0, element 3: 5 vs 6"})
    bad_fw = fw.model_copy(update={"bit_exact": False, "vs_host_tflm": differs})
    assert verdict(report.budgets, fw) and not verdict(report.budgets, bad_fw)
    bad = report.model_copy(update={"stages": report.stages.model_copy(update={"firmware": bad_fw}),
                                    "ok": verdict(report.budgets, bad_fw)})
    result = BuildResult(bad, out, ())
    assert result.violations == () and not result.ok
    assert result.failures() == ("firmware output differs at sample 0, output 0, element 3: 5 vs 6",)
