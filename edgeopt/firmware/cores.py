"""The Cortex-M cores a firmware image can be built for, and the QEMU machine that emulates each.

A profile's `[mcu] core` names one of `Core`. The compiler flags select CMSIS-NN's code path
(scalar on M0+/M3, DSP/SMLAD on M4/M7/M33, MVE/Helium on M55). `qemu` is None where QEMU 7.2
has no machine for the core (Cortex-M0+: QEMU only models the M0 of the micro:bit, a different
memory map; Cortex-M33: QEMU's mps2-an505 boots in the secure state from 0x10000000, which this
harness does not set up yet; Xtensa: no emulator at all). Memory: MPS2 has 4 MB SSRAM at 0x0 and
4 MB at 0x20000000; the MPS3 AN547 (Corstone-300) 512 KB ITCM at 0x0 and 512 KB DTCM at 0x20000000.

Instructions per SysTick tick: under `-icount shift=0` one guest instruction is 1 ns of virtual
time, and SysTick runs on the board's system clock (QEMU: 25 MHz on MPS2 AN385/386/500, 20 MHz on
AN505, 32 MHz on MPS3 AN547), so one tick is 1e9 / clock instructions. The firmware checks this
figure against a calibration loop on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edgeopt.errors import InputError


class Core(StrEnum):
    CORTEX_M0PLUS = "cortex-m0plus"
    CORTEX_M3 = "cortex-m3"
    CORTEX_M4 = "cortex-m4"
    CORTEX_M4F = "cortex-m4f"
    CORTEX_M7 = "cortex-m7"
    CORTEX_M33 = "cortex-m33"
    CORTEX_M55 = "cortex-m55"


@dataclass(frozen=True)
class QemuMachine:
    machine: str  # -M
    cpu: str  # -cpu
    clock_hz: int  # SysTick / system clock of the emulated board
    code_bytes: int  # RAM at 0x00000000 the image's flash region is loaded into
    ram_bytes: int  # RAM at 0x20000000

    @property
    def instructions_per_tick(self) -> float:
        return 1e9 / self.clock_hz


@dataclass(frozen=True)
class CoreSpec:
    core: Core
    cflags: tuple[str, ...]  # -mcpu, FPU and float ABI
    device: str  # Cortex_DFP device folder and define (ARMCM4...)
    qemu: QemuMachine | None


_MB = 1024 * 1024
CORES: dict[Core, CoreSpec] = {
    Core.CORTEX_M0PLUS: CoreSpec(Core.CORTEX_M0PLUS, ("-mcpu=cortex-m0plus", "-mfloat-abi=soft"), "ARMCM0plus", None),
    Core.CORTEX_M3: CoreSpec(Core.CORTEX_M3, ("-mcpu=cortex-m3", "-mfloat-abi=soft"), "ARMCM3",
                             QemuMachine("mps2-an385", "cortex-m3", 25_000_000, 4 * _MB, 4 * _MB)),
    Core.CORTEX_M4: CoreSpec(Core.CORTEX_M4, ("-mcpu=cortex-m4", "-mfloat-abi=soft"), "ARMCM4",
                             QemuMachine("mps2-an386", "cortex-m4", 25_000_000, 4 * _MB, 4 * _MB)),
    Core.CORTEX_M4F: CoreSpec(Core.CORTEX_M4F, ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"), "ARMCM4",
                              QemuMachine("mps2-an386", "cortex-m4", 25_000_000, 4 * _MB, 4 * _MB)),
    Core.CORTEX_M7: CoreSpec(Core.CORTEX_M7, ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"), "ARMCM7",
                             QemuMachine("mps2-an500", "cortex-m7", 25_000_000, 4 * _MB, 4 * _MB)),
    Core.CORTEX_M33: CoreSpec(Core.CORTEX_M33, ("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"), "ARMCM33", None),
    Core.CORTEX_M55: CoreSpec(Core.CORTEX_M55, ("-mcpu=cortex-m55", "-mfloat-abi=hard"), "ARMCM55",
                              QemuMachine("mps3-an547", "cortex-m55", 32_000_000, _MB // 2, _MB // 2)),
}
if set(CORES) != set(Core):  # the table covers the enum, no more, no less
    msg = "edgeopt.firmware.cores: CORES does not cover Core"
    raise RuntimeError(msg)


def core_spec(name: str, profile: str = "") -> CoreSpec:
    """The spec for a profile's `[mcu] core`; exit 2 for a core we cannot build for."""
    try:
        return CORES[Core(name)]
    except ValueError:
        if name.startswith("xtensa"):
            msg = (
                f"profile '{profile}': core '{name}' is an Xtensa core; there is no Xtensa emulator here and no "
                             "Cortex-M build for it, so no firmware run; `edgeopt mcu check` verifies the model on the host"
            )
            raise InputError(msg) from None
        where = f"profile '{profile}' names " if profile else ""
        msg = (
            f"{where}core '{name or '(none)'}': no Cortex-M firmware build for it (known: "
                         f"{', '.join(c.value for c in Core)}); run `edgeopt mcu check` for the host check"
        )
        raise InputError(msg) from None


def emulator(spec: CoreSpec, profile: str = "") -> QemuMachine:
    """The QEMU machine for the core; exit 2 when QEMU cannot emulate it."""
    if spec.qemu is None:
        where = f"profile '{profile}': " if profile else ""
        msg = (
            f"{where}QEMU cannot emulate {spec.core} (no machine with that core in qemu-system-arm); "
                         "`edgeopt mcu check` verifies the model on the host, or pick a board with an emulated core"
        )
        raise InputError(msg)
    return spec.qemu
