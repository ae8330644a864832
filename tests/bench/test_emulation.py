"""An emulated CPU is named (issue 26, item 2): detection on /proc/cpuinfo texts, and the label on every figure.

Fixtures in tests/bench/cpuinfo/: amd-epyc-host.txt is this x86 CI host's own /proc/cpuinfo (first core), what
qemu-user before 8.1 shows an emulated process; raspberry-pi-4-*.txt are a Pi 4's file in the kernel's format
(64-bit and 32-bit Raspberry Pi OS; Hardware/Revision/Model as the Raspberry Pi documentation shows them);
qemu-8-*.txt are what qemu-user 8.1+ writes itself (linux-user/arm/target_proc.h: ARMv8 "(v8l)" model name,
BogoMIPS 100.00; for 32-bit ARM a `Hardware : QEMU ...` line). No qemu-user on this machine, so no live run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from edgeopt.benchmark import render
from edgeopt.benchmark.compare import compare_reports
from edgeopt.benchmark.emulation import _madvise_ignored, detect, emulation
from edgeopt.benchmark.protocol import BenchSettings, run_benchmark
from edgeopt.benchmark.results import parse_report, report_of

TEXTS = Path(__file__).parent / "cpuinfo"
# Debian's qemu-user-static registration (/proc/sys/fs/binfmt_misc/qemu-aarch64) and one switched off.
BINFMT_ON = ("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n"
             "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n")
BINFMT_OFF = BINFMT_ON.replace("enabled", "disabled", 1)


def text(name: str) -> str:
    return (TEXTS / name).read_text()


def test_a_real_pi_is_not_emulated() -> None:
    assert emulation("aarch64", text("raspberry-pi-4-aarch64.txt")) is None
    assert emulation("armv7l", text("raspberry-pi-4-armv7l.txt")) is None
    assert emulation("x86_64", text("amd-epyc-host.txt")) is None
    # a qemu entry for another architecture, or a disabled one, says nothing about this process
    assert emulation("x86_64", text("amd-epyc-host.txt"), {"qemu-aarch64": BINFMT_ON}) is None
    assert emulation("aarch64", text("raspberry-pi-4-aarch64.txt"), {"qemu-aarch64": BINFMT_OFF}) is None


def test_qemu_user_before_8_1_shows_the_host_cpu() -> None:
    why = emulation("aarch64", text("amd-epyc-host.txt"))
    assert why == "qemu-user: aarch64 code on AMD EPYC, a CPU of the x86 family"
    assert "x86 family" in (emulation("armv7l", text("amd-epyc-host.txt")) or "")
    assert "arm family" in (emulation("x86_64", text("raspberry-pi-4-aarch64.txt")) or "")  # x86 code on an ARM host


def test_qemu_user_8_1_writes_its_own_cpuinfo() -> None:
    assert "QEMU's own" in (emulation("aarch64", text("qemu-8-aarch64.txt")) or "")
    assert "Hardware: QEMU v8.2.2" in (emulation("armv7l", text("qemu-8-armv7l.txt")) or "")
    # an ARM file with no CPU implementer line at all
    bare = "processor\t: 0\nBogoMIPS\t: 100.00\nFeatures\t: fp asimd\n"
    assert "no ARM 'CPU implementer' line" in (emulation("aarch64", bare) or "")


def test_binfmt_and_madvise_signs() -> None:
    pi = text("raspberry-pi-4-aarch64.txt")  # a file that looks real: only the other signs can tell
    why = emulation("aarch64", pi, {"qemu-aarch64": BINFMT_ON})
    assert why == ("qemu-user: binfmt_misc hands aarch64 binaries to an emulator "
                   "(qemu-aarch64 -> /usr/libexec/qemu-binfmt/aarch64-binfmt-P)")
    static = {"qemu-arm64-renamed": "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n"}
    assert "qemu-aarch64-static" in (emulation("aarch64", pi, static) or "")
    assert "madvise advice 127" in (emulation("aarch64", pi, madvise_ignored=True) or "")


def test_this_host_is_not_emulated() -> None:
    """The real checks on this machine: its /proc/cpuinfo, binfmt_misc and an invalid madvise the kernel refuses."""
    assert _madvise_ignored() is False
    assert detect() is None


@pytest.fixture(scope="module")
def results(models):
    """A real result and the same figures as an emulated aarch64 device would have reported them."""
    native = run_benchmark(models.tflite, BenchSettings(runs=3, min_seconds=0, warmup_seconds=0))
    assert native.fingerprint is not None and native.fingerprint.emulation is None and not native.emulated
    why = emulation("aarch64", text("amd-epyc-host.txt"))
    fp = replace(native.fingerprint, arch="aarch64", emulation=why)
    return native, replace(native, fingerprint=fp, device="pi-emulated")


def test_every_bench_output_says_emulated(results, cli, tmp_path) -> None:
    native, emulated = results
    report = parse_report(json.loads(report_of([emulated]).to_json()), "answer")  # as a --remote answer comes back
    (back,) = report.results
    assert back.fingerprint is not None and back.fingerprint.emulation == emulated.fingerprint.emulation
    data = report.to_dict()["results"][0]
    assert data["fingerprint"]["emulation"].startswith("qemu-user: aarch64 code on AMD EPYC")
    assert data["warnings"][0].startswith("measured on an emulated CPU (qemu-user: aarch64 code on AMD EPYC")
    row = dict(zip(render.COLUMNS, render.rows(report)[0], strict=True))
    assert row["emulated"] == "yes" and render.rows(report_of([native]))[0][-1] == "no"
    md = render.to_markdown(render.HEADERS, render.rows(report), render.fingerprints(report), render.warnings(report))
    assert "EMULATED CPU (qemu-user" in md and "warning: measured on an emulated CPU" in md
    assert back.label().endswith("(emulated)")
    # --compare: a native result against the emulated one
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(report_of([native]).to_json())
    new.write_text(report_of([emulated]).to_json())
    res = cli("bench", "--compare", old, new, "--json")
    assert res.exit_code == 0, res.output
    (c,) = json.loads(res.stdout)["comparisons"]
    assert any(n.startswith("new measured on an emulated CPU (qemu-user") for n in c["notes"])
    assert any(n.startswith("different machines") for n in c["notes"]) and c["new"].endswith("(emulated)")
    (cmp_,) = compare_reports(report_of([emulated]), report_of([emulated]))
    assert sum("emulated CPU" in n for n in cmp_.notes) == 2 and not any("different machines" in n for n in cmp_.notes)


def test_energy_from_an_emulated_latency_is_labelled(models) -> None:
    """A build timed on an emulated CPU: the raspberry-pi-4 estimate names the emulator's latency, and no host
    counter (RAPL) stands in for the device."""
    from edgeopt.energy.artifact import artifact_energy
    from edgeopt.profiles.loader import load_profile

    profile = load_profile("raspberry-pi-4").profile
    fig = artifact_energy(models.tflite, profile, 2.0, emulated=True)
    assert str(fig.method) == "estimate" and fig.latency_ms == 2.0 and fig.power_mw == 3060
    assert fig.latency_source == "measured on an emulated CPU (p50): the emulator's speed, not the device's"
    assert fig.joules_per_inference == pytest.approx(3060 * 2.0 / 1e6)
