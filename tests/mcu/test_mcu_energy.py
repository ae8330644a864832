"""`edgeopt mcu check` reports energy per inference: an estimate with its inputs, or why there is none."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgeopt.cli.app import app

pytestmark = pytest.mark.tensorflow


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_mcu_check_estimates_energy_and_battery_life_on_nrf52840(mcu_models) -> None:
    r = run("mcu", "check", mcu_models["int8"], "--target", "nrf52840", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    e = rep["energy"]
    assert e["method"] == "estimate" and e["latency_source"].startswith("MAC-rate estimate")
    assert e["latency_ms"] == pytest.approx(rep["estimated_device_latency_ms"])
    assert e["power_mw"] == 9.9 and "nRF52840 Product Specification" in e["power_source"]
    assert e["joules_per_inference"] == pytest.approx(9.9e-3 * rep["estimated_device_latency_ms"] / 1000)
    assert e["inferences_per_joule"] == pytest.approx(1 / e["joules_per_inference"])
    b = e["battery"]
    assert b["battery"] == "CR2032" and b["label"] == "estimate" and b["inferences_per_second"] == 1.0
    assert b["hours"] == pytest.approx(225 * 3.0 / b["average_power_mw"])
    human = run("mcu", "check", mcu_models["int8"], "--target", "nrf52840")
    assert "mJ/inference (estimate" in human.stdout and "battery CR2032" in human.stdout


def test_mcu_check_without_energy_constants_says_so(mcu_models) -> None:
    r = run("mcu", "check", mcu_models["int8"], "--target", "stm32h7", "--json")
    assert r.exit_code == 0, r.output
    e = json.loads(r.stdout)["energy"]
    assert e["method"] == "unavailable" and e["joules_per_inference"] is None
    assert "no [energy] active_power" in e["note"]
