"""Energy per inference: RAPL when the counter is readable, else profile power x latency (labelled)."""

from edgeopt.energy.figure import (
    BatteryLife,
    EnergyFigure,
    LatencySource,
    estimate_energy,
    firmware_energy,
    measured_energy,
)
from edgeopt.energy.rapl import RaplStatus, measure_rapl, rapl_status
from edgeopt.vocabulary import EnergyMethod

__all__ = ["BatteryLife", "EnergyFigure", "EnergyMethod", "LatencySource", "RaplStatus", "estimate_energy", "firmware_energy",
           "measure_rapl", "measured_energy", "rapl_status"]
