"""Energy per inference in real build reports: an MCU board estimate with battery life, a device profile
estimate from the measured p50, and both in report.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeopt.energy import rapl_status
from edgeopt.pipeline.build import BuildRequest, build
from edgeopt.report.markdown import text

pytestmark = pytest.mark.tensorflow


def _report(samples: Path, out: Path, target: str) -> tuple[dict, str]:
    res = build(BuildRequest(model=samples / "digits_cnn.keras", target=target, out=out))
    return json.loads((res.out / "report.json").read_text()), (res.out / "report.md").read_text()


def test_nrf52840_build_has_an_energy_estimate_with_battery_life(samples: Path, tmp_path: Path) -> None:
    data, md = _report(samples, tmp_path / "nrf", "nrf52840")
    e = data["stages"]["energy"]
    device = data["stages"]["mcu"]["device_latency"]
    assert e["method"] == "estimate" and e["latency_source"].startswith("MAC-rate estimate")
    assert e["latency_ms"] == pytest.approx(device["estimate_ms"])
    assert e["millijoules_per_inference"] == pytest.approx(9.9 * device["estimate_ms"] / 1000)  # mW x ms = uJ
    assert e["inferences_per_joule"] == pytest.approx(1 / e["joules_per_inference"])
    b = e["battery"]
    assert b["battery"] == "CR2032" and b["label"] == "estimate" and b["days"] == pytest.approx(b["hours"] / 24)
    assert "mJ** per inference (estimate)" in md and "Battery life (estimate): `CR2032`" in md
    comp = data["stages"]["composition"]
    assert comp["quantization_bit_ratio"] == "32/8" and comp["kernel_weights"] > 100_000


def test_device_profile_estimate_uses_the_measured_p50_and_says_why_not_measured(samples: Path, tmp_path: Path) -> None:
    data, md = _report(samples, tmp_path / "pi", "raspberry-pi-4")
    e = data["stages"]["energy"]
    status = rapl_status()
    if status.readable:  # a machine with a readable counter measures instead
        assert e["method"] == "measured" and e["joules_per_inference"] > 0
        return
    assert e["method"] == "estimate" and e["latency_source"] == "measured on this host (p50)"
    assert e["latency_ms"] == pytest.approx(data["optimized"]["latency_ms"]["p50"])
    assert e["power_mw"] == 3060 and "Raspberry Pi documentation" in e["power_source"]
    assert e["battery"] is None and e["note"] == status.reason
    assert f"Not measured: {text(status.reason)}." in md
