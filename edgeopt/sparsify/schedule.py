"""The gradual pruning schedule of Zhu & Gupta (2017), "To prune, or not to prune".

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3     for t in {t0, t0 + dt, ..., t0 + n*dt}

The sparsity rises fast while many redundant weights are left and slowly near the target; the
masks are recomputed every `frequency` steps between `begin_step` and `end_step` and the target
holds from `end_step` on, so the last steps fine-tune the final mask.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.errors import InputError


@dataclass(frozen=True)
class PolynomialSchedule:
    final_sparsity: float
    begin_step: int
    end_step: int
    frequency: int = 10
    initial_sparsity: float = 0.0
    power: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial_sparsity <= self.final_sparsity < 1.0:
            msg = (
                f"schedule needs 0 <= initial <= final sparsity < 1, got {self.initial_sparsity} and "
                             f"{self.final_sparsity}"
            )
            raise InputError(msg)
        if self.begin_step < 0 or self.end_step < self.begin_step or self.frequency < 1:
            msg = (
                f"schedule needs 0 <= begin_step <= end_step and frequency >= 1, got "
                             f"{self.begin_step}, {self.end_step}, {self.frequency}"
            )
            raise InputError(msg)

    def sparsity(self, step: int) -> float:
        """Target sparsity at `step` (0 before begin_step)."""
        if step < self.begin_step:
            return 0.0
        if step >= self.end_step or self.end_step == self.begin_step:
            return self.final_sparsity
        frac = (step - self.begin_step) / (self.end_step - self.begin_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - frac) ** self.power

    def updates_at(self, step: int) -> bool:
        """Whether the masks are recomputed after `step` (on the frequency grid, and at end_step)."""
        if step < self.begin_step or step > self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step
