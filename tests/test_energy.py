"""Energy per inference: profile constants (unit and source required), estimates, battery life, RAPL reading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.energy import EnergyMethod, LatencySource, estimate_energy, rapl_status
from edgeopt.energy.rapl import _delta_uj, _read
from edgeopt.errors import ProfileError
from edgeopt.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]

BAD_ENERGY = [
    ("[energy]\nactive_power = 9.9\n", "a bare number (9.9) has no unit or source"),
    ('[energy]\nactive_power = { value = 9.9, unit = "mW" }\n', "the constant has no source"),
    ('[energy]\nactive_power = { value = 9.9, source = "datasheet" }\n', "the constant has no unit"),
    ('[energy]\nactive_power = { value = 9.9, unit = "mW", source = "  " }\n', "source is empty"),
    ('[energy]\nactive_power = { value = 9.9, unit = "mAh", source = "x" }\n', "unit 'mAh' is not one of W, mW, uW"),
    ('[energy]\nactive_power = { value = 9.9, unit = "mW", source = "x" }\nbattery = { name = "CR2032", '
     'capacity = 225, voltage = { value = 3, unit = "V", source = "x" } }\n', "battery.capacity"),
]


@pytest.mark.parametrize("body, needle", BAD_ENERGY)
def test_energy_constants_need_unit_and_source(tmp_path: Path, body: str, needle: str) -> None:
    f = tmp_path / "board.toml"
    f.write_text('extends = "embedded-mcu"\n' + body)
    with pytest.raises(ProfileError) as exc:
        load_profile(str(f))
    assert needle in str(exc.value) and "energy" in str(exc.value)


def test_cli_refuses_a_bare_energy_number_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "board.toml"
    f.write_text('extends = "embedded-mcu"\n' + BAD_ENERGY[0][0])
    r = subprocess.run([sys.executable, "-m", "edgeopt", "targets", "show", str(f)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no unit or source" in r.stderr


def test_nrf52840_estimate_and_battery_life() -> None:
    energy = load_profile("nrf52840").profile.energy
    assert energy is not None and energy.battery is not None
    fig = estimate_energy(energy, 10.0, LatencySource.MAC_RATE)
    assert fig.method is EnergyMethod.ESTIMATE
    assert fig.joules_per_inference == pytest.approx(9.9e-3 * 10e-3)  # 9.9 mW x 10 ms = 99 uJ
    assert fig.inferences_per_joule == pytest.approx(1 / 99e-6)
    b = fig.battery
    assert b is not None and b.label == "estimate" and b.inferences_per_second == 1.0
    avg_mw = 99e-6 * 1000 + 4.5e-3 * (1 - 0.01)  # E x f + sleep x (1 - busy)
    assert b.average_power_mw == pytest.approx(avg_mw)
    assert b.hours == pytest.approx(225 * 3.0 / avg_mw)
    assert "nRF52840" in fig.power_source and "64 MHz" in fig.power_source
    assert "estimate" in fig.describe() and "CR2032" in fig.describe()


def test_estimate_says_why_when_it_cannot() -> None:
    fig = estimate_energy(None, 5.0, LatencySource.HOST_MEASURED, counter_note="no energy counter: x")
    assert fig.method is EnergyMethod.UNAVAILABLE and fig.joules_per_inference is None
    assert "no energy counter" in fig.note and "[energy] active_power" in fig.note
    energy = load_profile("raspberry-pi-4").profile.energy
    assert energy is not None and energy.battery is None
    assert estimate_energy(energy, None, None).method is EnergyMethod.UNAVAILABLE
    fig = estimate_energy(energy, 2.0, LatencySource.HOST_MEASURED)
    assert fig.joules_per_inference == pytest.approx(3.06 * 2e-3) and fig.battery is None


def test_rapl_status_on_this_machine_is_a_reason_or_domains() -> None:
    st = rapl_status()
    if st.readable:
        assert st.domains and st.reason.startswith("RAPL package energy")
    else:
        assert st.reason.startswith("no energy counter") and not st.domains


def test_rapl_counters_are_read_across_wraparound(tmp_path: Path) -> None:
    d = tmp_path / "intel-rapl:0"
    d.mkdir()
    (d / "energy_uj").write_text("900\n")
    (d / "max_energy_range_uj").write_text("1000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-domain: not summed
    st = rapl_status(tmp_path)
    assert st.readable and st.domains == (d,)
    before = _read(st.domains)
    (d / "energy_uj").write_text("100\n")
    assert _delta_uj(before, _read(st.domains), st.domains) == 200
    assert not rapl_status(tmp_path / "absent").readable
