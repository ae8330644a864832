"""Flash and RAM of an MCU deployment, checked against the board and the profile budgets.

flash = model bytes + [mcu] runtime_flash_kb (TFLM, kernels, application code)
RAM   = tensor arena with margin + input and output buffers

The I/O term counts one application-side copy of every input and output (the
buffer a sensor driver fills, the result the app keeps); TFLM's own input and
output tensors already live inside the arena. Drop it by keeping none.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.errors import BudgetViolation
from edgeopt.profiles.schema import Profile

KB = 1024


@dataclass(frozen=True)
class McuBudget:
    flash_bytes: int
    ram_bytes: int
    flash_limit_bytes: int | None  # the tighter of board flash and budgets.max_flash_kb
    ram_limit_bytes: int | None
    violations: tuple[BudgetViolation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def _kb(b: float) -> float:
    return round(b / KB, 2)


def check_budget(profile: Profile, model_bytes: int, arena_with_margin: int, io_bytes: int) -> McuBudget:
    mcu, budgets = profile.mcu, profile.budgets
    flash = model_bytes + int(round(mcu.runtime_flash_kb * KB))
    ram = arena_with_margin + io_bytes
    limits = (
        ("flash (board [mcu] flash_kb)", flash, mcu.flash_kb),
        ("flash (budgets.max_flash_kb)", flash, budgets.max_flash_kb),
        ("RAM (board [mcu] ram_kb)", ram, mcu.ram_kb),
        ("RAM (budgets.max_ram_kb)", ram, budgets.max_ram_kb),
    )
    violations = tuple(BudgetViolation(name=name, limit=float(limit), actual=_kb(used), unit="KB")
                       for name, used, limit in limits if limit is not None and used > limit * KB)

    def tighter(*kbs: float | None) -> int | None:
        vals = [int(k * KB) for k in kbs if k is not None]
        return min(vals) if vals else None

    return McuBudget(flash_bytes=flash, ram_bytes=ram, flash_limit_bytes=tighter(mcu.flash_kb, budgets.max_flash_kb),
                     ram_limit_bytes=tighter(mcu.ram_kb, budgets.max_ram_kb), violations=violations)
