"""The value the MCU stage returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgeopt.energy.figure import EnergyFigure
from edgeopt.errors import BudgetExceededError, BudgetViolation
from edgeopt.mcu.compare import DiffLocation


@dataclass(frozen=True)
class McuReport:
    model: str
    profile: str
    core: str
    model_bytes: int
    ops: tuple[str, ...]  # distinct ops, sorted
    op_counts: dict[str, int]
    unsupported_ops: tuple[str, ...]  # always empty in a returned report (unsupported ops raise)
    macs: int
    params: int
    arena_bytes: int  # exact minimum measured in the TFLM interpreter (size - 1 fails)
    arena_with_margin: int  # what the firmware should reserve (the C export's ARENA_SIZE)
    arena_probes: int
    input_bytes: int
    output_bytes: int
    io_bytes: int
    flash_bytes: int  # model + [mcu] runtime_flash_kb
    ram_bytes: int  # arena_with_margin + io_bytes
    flash_limit_bytes: int | None
    ram_limit_bytes: int | None
    samples_compared: int
    sample_source: str  # "random (seed 0)" or the data file
    bit_exact: bool | None  # TFLM vs LiteRT (builtin kernels, no XNNPACK); None when not compared
    max_abs_diff: float | None
    diff_at: DiffLocation | None
    mismatched_elements: int | None
    reference_kernels_bit_exact: bool | None  # when they differ: TFLM vs LiteRT's reference kernels
    host_tflm_latency_ms: float | None  # median invoke time of TFLM on THIS HOST (not the device)
    estimated_device_latency_ms: float | None  # MACs / [mcu] sustained_macs_per_second: an estimate, not measured
    macs_per_second: float | None  # the [mcu] sustained_macs_per_second that estimate used (None: no estimate)
    violations: tuple[BudgetViolation, ...]
    # integer I/O types that differ from the profile's (e.g. a deployed model with uint8 output on an int8
    # profile): the model still runs and was measured; the firmware must use the model's types
    io_findings: tuple[str, ...] = ()
    io_types: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # (inputs, outputs): the model's own dtypes
    # > 0: a stateful (streaming) model; its samples were compared as consecutive frames, state carried
    resource_variables: int = 0
    c_header: str | None = None
    c_source: str | None = None
    energy: EnergyFigure | None = None  # profile power x the device latency estimate (edgeopt.energy)

    @property
    def ok(self) -> bool:
        return not self.violations and self.bit_exact is not False

    def comparison_note(self) -> str:
        """TFLM vs LiteRT in one phrase, saying whose rounding a difference is when we know."""
        if self.bit_exact is None:
            return "not compared"
        if self.bit_exact:
            return "bit-exact"
        where = self.diff_at
        at = f" at sample {where.sample}, output {where.output}, element {list(where.element)}" if where else ""
        text = f"max |diff| {self.max_abs_diff:g}{at} ({self.mismatched_elements} elements)"
        if self.reference_kernels_bit_exact:
            return text + "; bit-exact with LiteRT's reference kernels: the difference is LiteRT's optimized-kernel rounding"
        if self.reference_kernels_bit_exact is False:
            return text + "; TFLM also differs from LiteRT's reference kernels"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["comparison_note"] = self.comparison_note()
        d["energy"] = None if self.energy is None else self.energy.to_dict()
        d["latency_note"] = "host_tflm_latency_ms is measured on the host CPU; estimated_device_latency_ms = MACs / sustained MAC/s"
        return d

    def enforce_budgets(self) -> None:
        """Raise BudgetExceededError (exit 3) if the flash or RAM budget is broken."""
        if self.violations:
            raise BudgetExceededError(self.violations, f"model {self.model} on {self.profile}")
