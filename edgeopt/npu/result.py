"""What the NPU stage returns: one frozen value, written into report.json as `stages.npu` as it is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NpuLayer(_Frozen):
    """One row of Vela's per-layer performance table (an operator as Vela lowered it)."""

    original_operator: str  # the TFLite operator it came from ("Conv2D", "Softmax")
    operator: str  # Vela's operator ("Conv2D", "Relu", "LUT", "Passthrough")
    target: str  # "NPU" or "CPU"
    name: str  # the output tensor's name
    cycles: int  # Vela's estimate; 0 for what is fused into the operator before it or runs on the CPU
    time_ms: float  # cycles / the NPU clock
    macs: int
    staging_bytes: int  # SRAM staging this operator uses


class NpuOperators(_Frozen):
    """The int8 model's TFLite operators: mapped into Vela's `ethos-u` custom operators, or left for the CPU."""

    total: int
    npu: int
    cpu: int
    cpu_ops: dict[str, int]  # operator type -> how many were left for the Cortex-M (TFLM kernels)
    cpu_reasons: dict[str, str]  # operator type -> Vela's reason for leaving it (when Vela gave one)
    command_streams: int  # `ethos-u` custom operators in the compiled model (NPU regions)


class NpuStage(_Frozen):
    """Vela's compilation of the int8 artifact for the profile's Ethos-U: what runs where, memory, cycles.

    Every figure is Vela's estimate for its model of the memory system, not a measurement; the CPU operators'
    time is not in it (they run on the Cortex-M: `edgeopt mcu run` measures that part on QEMU)."""

    compiler: str  # "Vela 5.2.0"
    accelerator: str  # Vela's --accelerator-config, e.g. "ethos-u55-128"
    system_config: str
    memory_mode: str
    config_source: str  # the profile's [npu] source
    label: str  # "estimate (Vela 5.2.0, ethos-u55-128, Ethos_U55_High_End_Embedded, Shared_Sram)"
    compiled_model: str  # the Vela-compiled .tflite, a file name in the output folder
    compiled_bytes: int
    operators: NpuOperators
    sram_bytes: int  # Vela's "Total SRAM used": tensor arena + staging the NPU needs
    flash_bytes: int  # on-chip + off-chip flash used (weights and the command stream)
    dram_bytes: int
    clock_mhz: float  # the NPU clock of the system configuration
    cycles: int  # total, the NPU's part of one inference
    latency_ms: float = Field(description="Vela's estimate of the NPU part of one inference, cycles / clock")
    macs: int
    layers: list[NpuLayer]
    compile_seconds: float
    method: str = "estimate: Vela's performance model of the NPU part; CPU operators are not included"
