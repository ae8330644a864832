"""The `[energy]` profile section: datasheet constants, each with its unit and its source.

    [energy]
    clock = { value = 64, unit = "MHz", source = "nRF52840 PS v1.7: HFCLK 64 MHz" }
    active_power = { value = 9.9, unit = "mW", source = "nRF52840 PS v1.7, CPU CoreMark from flash ..." }
    sleep_power = { value = 4.5, unit = "uW", source = "..." }
    inferences_per_second = 1.0          # the duty cycle the battery life is computed at (an assumption)
    battery = { name = "CR2032", capacity = { value = 225, unit = "mAh", source = "..." },
                voltage = { value = 3.0, unit = "V", source = "..." } }

A bare number, a missing unit, a unit of the wrong kind or an empty source is refused when the
profile is loaded (exit 2): a figure without its provenance is not something to report.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator


class EnergyUnit(StrEnum):
    W = "W"
    MW = "mW"
    UW = "uW"
    MAH = "mAh"
    V = "V"
    MHZ = "MHz"


POWER_UNITS = {EnergyUnit.W: 1000.0, EnergyUnit.MW: 1.0, EnergyUnit.UW: 1e-3}  # -> mW


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Constant(_Strict):
    value: Annotated[float, Field(gt=0)]
    unit: EnergyUnit
    source: Annotated[str, Field(min_length=1, description="datasheet, document and table the value comes from")]

    @field_validator("source")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            msg = "source is empty; name the datasheet (document, revision, table) the value comes from"
            raise ValueError(msg)
        return v

    def in_mw(self) -> float:
        return self.value * POWER_UNITS[self.unit]


def _needs_table(v: Any) -> Any:
    if isinstance(v, int | float) and not isinstance(v, bool):
        msg = (
            f"a bare number ({v}) has no unit or source; write {{ value = {v}, unit = \"...\", "
                         "source = \"datasheet, table\" }"
        )
        raise ValueError(msg)
    if isinstance(v, dict):
        missing = [k for k in ("unit", "source") if k not in v]
        if missing:
            msg = (
                f"the constant has no {' or '.join(missing)}; every energy constant needs "
                             "{ value, unit, source }"
            )
            raise ValueError(msg)
    return v


def _of_kind(*units: EnergyUnit) -> Any:
    def check(c: Constant) -> Constant:
        if c.unit not in units:
            msg = f"unit '{c.unit}' is not one of {', '.join(units)}"
            raise ValueError(msg)
        return c

    return check


Power = Annotated[Constant, BeforeValidator(_needs_table), AfterValidator(_of_kind(*POWER_UNITS))]
Capacity = Annotated[Constant, BeforeValidator(_needs_table), AfterValidator(_of_kind(EnergyUnit.MAH))]
Voltage = Annotated[Constant, BeforeValidator(_needs_table), AfterValidator(_of_kind(EnergyUnit.V))]
Clock = Annotated[Constant, BeforeValidator(_needs_table), AfterValidator(_of_kind(EnergyUnit.MHZ))]


class Battery(_Strict):
    name: Annotated[str, Field(min_length=1)]
    capacity: Capacity
    voltage: Voltage


class EnergySection(_Strict):
    """Device power for energy estimates (used when no energy counter can be read)."""

    clock: Clock | None = None
    active_power: Power  # the device running inference at `clock`
    sleep_power: Power | None = None  # between inferences, for battery life
    inferences_per_second: Annotated[float, Field(gt=0, description="duty cycle for battery life (an assumption)")] = 1.0
    battery: Battery | None = None
