"""`edgeopt mcu run` reports energy per inference from the firmware's instruction-count latency estimate."""

from __future__ import annotations

import json

import pytest

from tests.firmware.conftest import SAMPLES, needs_toolchain

pytestmark = [pytest.mark.tensorflow, pytest.mark.firmware]


@needs_toolchain
def test_mcu_run_energy_uses_the_firmware_estimate(cli, int8_models, tflm) -> None:
    model = int8_models["digits_dscnn"]
    r = cli("mcu", "run", model, "--target", "nrf52840", "--tflm", tflm, "--data", SAMPLES / "digits_dscnn.eval.npz",
            "--samples", "2", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    e, lat = d["energy"], d["device_latency_estimate_ms"]
    assert e["method"] == "estimate" and e["latency_source"] == "firmware instruction-count estimate"
    assert e["latency_ms"] == pytest.approx(lat["median"], rel=1e-3)
    assert e["joules_per_inference"] == pytest.approx(9.9e-3 * e["latency_ms"] / 1000)
    assert e["battery"]["battery"] == "CR2032" and e["battery"]["label"] == "estimate"
