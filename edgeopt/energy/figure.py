"""Energy per inference: measured (RAPL) or estimated from the profile's [energy] constants.

    estimate:  E = P_active x t_latency            (mW x ms = uJ)
    inferences per joule = 1 / E
    battery:   P_avg = f x E + P_sleep x (1 - f x t_latency)      (f = inferences per second)
               life  = capacity (mAh) x voltage (V) / P_avg (mW)   (hours)

Every figure says how it was obtained (`method`) and which latency it used (`latency_source`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from edgeopt.profiles.energy import EnergySection
from edgeopt.vocabulary import EnergyMethod


class LatencySource(StrEnum):
    HOST_MEASURED = "measured on this host (p50)"
    DEVICE_MEASURED = "measured on the device (p50)"
    EMULATED = "measured on an emulated CPU (p50): the emulator's speed, not the device's"
    FIRMWARE_ESTIMATE = "firmware instruction-count estimate"
    MAC_RATE = "MAC-rate estimate (MACs / mcu.sustained_macs_per_second)"


@dataclass(frozen=True)
class BatteryLife:
    battery: str
    capacity_mah: float
    voltage_v: float
    inferences_per_second: float
    average_power_mw: float
    hours: float
    label: str = "estimate"

    @property
    def days(self) -> float:
        return self.hours / 24.0


@dataclass(frozen=True)
class EnergyFigure:
    method: EnergyMethod
    joules_per_inference: float | None
    power_mw: float | None  # the active power used (estimate) or the net measured power
    power_source: str  # the profile's source text, or the counter
    latency_ms: float | None
    latency_source: str | None
    battery: BatteryLife | None = None
    note: str = ""

    @property
    def millijoules_per_inference(self) -> float | None:
        return None if self.joules_per_inference is None else self.joules_per_inference * 1000.0

    @property
    def inferences_per_joule(self) -> float | None:
        j = self.joules_per_inference
        return None if not j else 1.0 / j

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["method"] = str(self.method)
        d["millijoules_per_inference"] = self.millijoules_per_inference
        d["inferences_per_joule"] = self.inferences_per_joule
        if self.battery is not None:
            d["battery"]["days"] = self.battery.days
        return d

    def describe(self) -> str:
        """One line for human output."""
        if self.joules_per_inference is None:
            return f"energy {self.method}: {self.note}"
        text = (f"{self.millijoules_per_inference:.4g} mJ/inference ({self.method}; {self.inferences_per_joule:,.0f} "
                f"inferences/J; ")
        if self.method is EnergyMethod.ESTIMATE:
            text += f"{self.power_mw:g} mW x {self.latency_ms:.4g} ms, latency {self.latency_source})"
        else:
            text += f"net {self.power_mw:.4g} mW over the window, {self.power_source})"
        if self.battery is not None:
            b = self.battery
            text += (f"; battery {b.battery} at {b.inferences_per_second:g} inference/s: {b.days:,.1f} days "
                     f"({b.label})")
        return text


def battery_life(energy: EnergySection, joules_per_inference: float, latency_ms: float) -> BatteryLife | None:
    if energy.battery is None:
        return None
    f = energy.inferences_per_second
    busy = f * latency_ms / 1000.0  # fraction of each second spent inferring
    sleep_mw = energy.sleep_power.in_mw() if energy.sleep_power is not None else 0.0
    avg_mw = f * joules_per_inference * 1000.0 + sleep_mw * max(0.0, 1.0 - busy)
    b = energy.battery
    hours = b.capacity.value * b.voltage.value / avg_mw if avg_mw > 0 else float("inf")
    label = "estimate" if busy <= 1.0 else "estimate; the duty cycle exceeds 100 % (inference longer than its period)"
    return BatteryLife(b.name, b.capacity.value, b.voltage.value, f, avg_mw, hours, label)


def estimate_energy(energy: EnergySection | None, latency_ms: float | None, latency_source: LatencySource | str | None,
                    counter_note: str = "") -> EnergyFigure:
    """Profile power x latency; UNAVAILABLE (with the reason) when either is missing."""
    why_counter = f"{counter_note}; " if counter_note else ""
    if energy is None:
        return EnergyFigure(EnergyMethod.UNAVAILABLE, None, None, "", latency_ms, None if latency_source is None else str(latency_source),
                            note=why_counter + "the profile has no [energy] active_power (with unit and source) to estimate from")
    if latency_ms is None or latency_ms <= 0:
        return EnergyFigure(EnergyMethod.UNAVAILABLE, None, energy.active_power.in_mw(), energy.active_power.source, None, None,
                            note=why_counter + "no latency figure to multiply the active power by")
    p = energy.active_power.in_mw()
    j = p * latency_ms / 1e6  # mW * ms = uJ
    clock = f" at {energy.clock.value:g} {energy.clock.unit}" if energy.clock is not None else ""
    return EnergyFigure(EnergyMethod.ESTIMATE, j, p, energy.active_power.source + clock, latency_ms, str(latency_source),
                        battery_life(energy, j, latency_ms), note=counter_note)


def measured_energy(m: Any, status_reason: str, energy: EnergySection | None = None) -> EnergyFigure:
    """A RaplMeasurement as a figure (battery life from the profile if it has one)."""
    latency_ms = m.window_s * 1000.0 / m.inferences
    bat = battery_life(energy, m.joules_per_inference, latency_ms) if energy is not None else None
    return EnergyFigure(EnergyMethod.MEASURED, m.joules_per_inference, m.net_power_mw, status_reason, latency_ms,
                        f"mean over the {m.window_s:.2f} s window ({m.inferences} inferences)", bat,
                        note=f"idle baseline {m.idle_power_mw:.1f} mW subtracted from {m.active_power_mw:.1f} mW")


def firmware_energy(energy: EnergySection | None, latency: Any) -> EnergyFigure:
    """`edgeopt mcu run`: profile power x the firmware's instruction-count latency estimate (median)."""
    ms = None if latency is None else float(latency.median_ms)
    return estimate_energy(energy, ms, LatencySource.FIRMWARE_ESTIMATE if ms is not None else None)
