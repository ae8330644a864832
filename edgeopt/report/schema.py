"""report.json, typed. `edgeopt report-schema` / docs/report.schema.json publish it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.npu.result import NpuStage
from edgeopt.vocabulary import AccuracyMetric, DeviceClass, EnergyMethod

# 2.0: typed stages, latency fingerprint, MCU device latency estimate; 2.1: energy, sparsity ratios, stages.firmware;
# 2.2: latency CPU time, host load, input shapes; 2.3: accuracy per output (accuracy.outputs) with its metric
# (top1, agreement, snr, cosine, max-abs); 2.4: stages.conversion (ONNX -> TFLite by onnx2tf, proven);
# 2.5: stages.npu (Ethos-U through Vela: NPU/CPU operators, SRAM, flash, cycles);
# 2.6: fingerprint.emulation (figures measured on an emulated CPU);
# 2.7: no cosine for outputs of one value, activation candidates' accuracy
SCHEMA_VERSION = "2.7"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tool(Frozen):
    name: str = "edgeopt"
    version: str


class Target(Frozen):
    name: str
    profile_sha256: str
    device_class: DeviceClass


class InputInfo(Frozen):
    path: str
    sha256: str
    format: str
    params: int | None
    macs: int | None


class ArtifactInfo(Frozen):
    path: str  # relative to the output folder
    format: str
    scheme: str
    bytes: int
    sha256: str


class OutputAccuracy(Frozen):
    """One output of the artifact against the float model's, scored by its metric."""

    name: str
    metric: AccuracyMetric
    value: float  # top-1 %, agreement %, SNR dB, mean cosine similarity or max absolute error, by `metric`
    reference_value: float | None  # top1: the float model's top-1 %
    drop: float | None  # top1 / agreement: percentage points lost against the float model
    agreement: float | None  # percent of samples with the float model's top-1 (outputs with 2+ values per sample)
    snr_db: float  # against the float model's output (capped at 200 dB)
    cosine: float | None  # mean cosine similarity per sample; None for an output of one value per sample
    max_abs: float  # largest absolute difference
    budget: str | None  # the [budgets] key checked on it (max_accuracy_drop, min_snr_db, ...); None: not checked
    ok: bool | None  # within that budget; None when not checked


class AccuracyInfo(Frozen):
    """The top-level fields are the first (primary) output's; `outputs` scores every output."""

    metric: str  # the primary output's metric: "top1" (labels given), "agreement", "snr", "cosine", "max-abs"
    reference: str  # the float model it is compared with
    value: float | None  # top-1 accuracy, percent
    reference_value: float | None  # the float model's top-1, percent
    drop: float | None  # percentage points lost against the float model
    agreement: float | None  # percent of samples with the same top-1 as the float model; None: not class scores
    snr_db: float  # output SNR against the float model (capped at 200 dB)
    samples: int
    outputs: list[OutputAccuracy] = Field(default_factory=list)  # every output, in the source model's order


class Fingerprint(Frozen):
    """The machine and runtime a latency was measured on (edgeopt.benchmark.fingerprint)."""

    host: str
    cpu: str
    cores: int
    arch: str
    os: str
    python: str
    runtime: str
    runtime_version: str
    implementation: str
    threads: int
    delegate: str
    graph_optimization: str | None  # onnxruntime only
    emulation: str | None = None  # why the CPU was emulated (qemu-user): not a real device's speed; None: native


class LatencyInfo(Frozen):
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    runs: int
    warmup: int
    threads: int
    runtime: str
    runtime_version: str
    delegate: str
    init_ms: float
    where: str  # "local" (this host) or the ssh destination it ran on
    fingerprint: Fingerprint | None  # None only for results that did not record one
    cpu_ms: float | None = None  # process CPU time per invoke (all threads) over the timed runs; None: not recorded
    cores: int | None = None  # cores the measuring process could use
    load_1m: float | None = None  # the host's 1-minute load average while measuring
    load_above_cores: bool | None = None  # load_1m > cores: other work competed, latencies and ratios are biased
    threads_above_cores: bool | None = None  # more runtime threads than cores: latency worse than the host can give
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (input name, dims) fed while timing, input order


class Variant(Frozen):
    artifact: ArtifactInfo
    accuracy: AccuracyInfo | None
    latency_ms: LatencyInfo | None


class Budget(Frozen):
    name: str
    limit: float
    actual: float | None
    unit: str
    ok: bool | None  # None: could not be checked (see notes)


class Ratios(Frozen):
    size: float  # optimized bytes / baseline bytes
    latency_p50: float | None  # optimized p50 / baseline p50 (above 1: the optimized artifact is slower)

    @property
    def latency_verdict(self) -> str | None:
        """"slower", "faster" or "same" at the two decimals a ratio is shown with; None when not benchmarked."""
        if self.latency_p50 is None:
            return None
        shown = round(self.latency_p50, 2)
        return "slower" if shown > 1 else "faster" if shown < 1 else "same"


class Calibration(Frozen):
    source: str  # a path, "random" or "none"
    samples: int


# ------------------------------------------------------------------------------------------ stages


class PruneRequest(Frozen):
    ratio: float | None
    macs_reduction: float | None


class PruneFinetune(Frozen):
    epochs_run: int
    loss_history: list[float]


class PruneGroup(Frozen):
    layers: list[str]  # layers whose channels shrink together
    channels_before: int
    channels_after: int


class Unprunable(Frozen):
    layer: str
    reason: str


class PruneStage(Frozen):
    """Structural pruning ([prune]): what was removed and the accuracy on the way (top-1 percent)."""

    criterion: str
    allocation: str
    round_to: int
    epochs: int
    learning_rate: float
    requested: PruneRequest
    channel_ratio: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    macs_reduction: float  # fraction of MACs removed (0..1)
    params_reduction: float
    accuracy_before: float | None
    accuracy_after_prune: float | None
    accuracy_after_finetune: float | None
    finetuned: bool
    finetune: PruneFinetune | None
    groups: list[PruneGroup]
    unprunable: list[Unprunable]
    warnings: list[str]


class ClusterSpecInfo(Frozen):
    clusters: int
    layers: str | None  # regex on layer names; None = every clusterable layer
    init: str
    epochs: int
    learning_rate: float
    batch_size: int
    seed: int


class ClusterLayer(Frozen):
    layer: str
    weight: str
    params: int
    unique_before: int
    unique_after: int


class CompressedSize(Frozen):
    keras_bytes: int
    keras_gzip_bytes: int
    tflite_bytes: int
    tflite_gzip_bytes: int


class ClusterStage(Frozen):
    """Weight sharing ([cluster]): k-means per layer; unique weight values before and after."""

    spec: ClusterSpecInfo
    layers: list[ClusterLayer]
    warnings: list[str]
    size_before: CompressedSize | None
    size_after: CompressedSize | None
    tflite_gzip_ratio: float | None  # gzipped .tflite before / after
    accuracy_before: float | None  # Keras top-1 percent
    accuracy_after: float | None
    accuracy_drop: float | None
    finetune_epochs: int
    loss_history: list[float]


class SensitivityRow(Frozen):
    name: str  # the op's output tensor (TFLite) or node name (ONNX)
    layer: str  # readable label
    op_type: str
    rmse: float
    snr_db: float  # lower = more sensitive to int8
    macs_share: float  # fraction of the model's MACs (0..1)


class PartialStep(Frozen):
    step: int
    scheme: str  # "int8", "int8+float" or "int16x8"
    out_of_int8: list[str]  # op names kept out of int8 ("*" = every op, for int16x8)
    layers: list[str]  # the same, as readable layer labels
    size_bytes: int
    accuracy: float | None  # top-1 percent (None without integer labels)
    accuracy_drop: float  # points vs the float model (100 - agreement without labels)
    latency_p50_ms: float | None
    within_budget: bool
    metric: str = ""  # the primary output's metric (top1, agreement, snr, cosine, max-abs); "" in older reports
    figure: float | None = None  # its budget figure: points lost (top1/agreement), dB (snr), similarity, abs error


class PartialStage(Frozen):
    """Accuracy control ([partial]): every variant tried; the first within budget wins, else the best."""

    backend: str  # "tflite" (Keras, TF converter), "tflite-file" (a float .tflite, ai-edge-quantizer) or "onnx"
    max_accuracy_drop: float
    float_accuracy: float | None
    sensitivity: list[SensitivityRow]  # graph order
    steps: list[PartialStep]
    chosen: int  # index into steps: the artifact shipped
    met: bool  # False: no variant met max_accuracy_drop (the budget then fails)


class QatStage(Frozen):
    """Quantization-aware training: [qat] directly ("direct") or as the accuracy ladder's last rung ("fallback")."""

    role: str
    epochs: int
    losses: list[float]  # mean training loss per epoch
    train_seconds: float
    trained_layers: list[str]
    folded_bn: list[str]  # BatchNormalization layers folded into the Conv/Dense before them
    activation_quantizers: int
    float_keras_accuracy: float | None  # Keras top-1 percent, float model
    qat_keras_accuracy: float | None  # Keras top-1 percent, fake-quant model after training
    scales_from: str  # where the artifact's int8 scales come from


class DiffAt(Frozen):
    sample: int
    output: int
    element: list[int]


class DeviceLatency(Frozen):
    """Latency on the microcontroller, estimated (not measured): MACs / [mcu] sustained_macs_per_second."""

    estimate_ms: float
    macs: int
    macs_per_second: float
    method: str = "estimate: MACs / [mcu] sustained_macs_per_second"


class McuStage(Frozen):
    """TFLite Micro delivery (embedded-mcu): ops, measured arena, flash/RAM, TFLM vs LiteRT, latency."""

    model: str  # the artifact checked (file name in the output folder)
    core: str
    model_bytes: int
    ops: list[str]
    op_counts: dict[str, int]
    macs: int
    params: int
    arena_bytes: int  # exact minimum measured in the TFLM interpreter (size - 1 fails)
    arena_with_margin: int  # the C export's ARENA_SIZE
    arena_probes: int
    input_bytes: int
    output_bytes: int
    io_bytes: int
    flash_bytes: int  # model + [mcu] runtime_flash_kb
    ram_bytes: int  # arena_with_margin + io_bytes
    flash_limit_bytes: int | None
    ram_limit_bytes: int | None
    samples_compared: int
    sample_source: str
    bit_exact: bool | None  # TFLM vs LiteRT builtin kernels; None when not compared
    max_abs_diff: float | None
    diff_at: DiffAt | None
    mismatched_elements: int | None
    reference_kernels_bit_exact: bool | None
    comparison_note: str
    host_tflm_latency_ms: float | None = Field(description="TFLM invoke time on the build host's CPU, not the device")
    device_latency: DeviceLatency | None = Field(
        description="estimated device latency; None when the profile gives no [mcu] sustained_macs_per_second")
    c_header: str | None  # file names in the output folder
    c_source: str | None


class SparsityLayer(Frozen):
    layer: str
    weight: str
    params: int
    zeros_before: int
    zeros_after: int


class SparsityStage(Frozen):
    """Weight-level magnitude pruning ([sparsity]): zeros in the Keras kernels; the artifact's are in composition."""

    sparsity: float  # target (N:M: set by the pattern)
    pattern: str
    allocation: str
    layers_regex: str | None
    layers: list[SparsityLayer]
    achieved: float  # zeros / weights over the sparsified kernels
    accuracy_before: float | None
    accuracy_after: float | None
    finetune_epochs: int
    mask_updates: int
    warnings: list[str]


class FirmwareElf(Frozen):
    """Sizes of the linked image (`arm-none-eabi-size -A` + the linker map), bytes."""

    text: int
    rodata: int
    data: int
    bss: int
    heap: int
    stack: int
    flash_bytes: int  # every allocated flash section + the load image of .data
    ram_bytes: int  # .data + .bss + heap + stack
    flash_split: dict[str, int]  # model, tflm, libc, rest
    ram_split: dict[str, int]  # arena, tflm, libc, stack, heap, rest


class FirmwareArena(Frozen):
    target_bytes: int  # smallest arena with which AllocateTensors() and Invoke() succeed on the emulated core
    target_minus_one_fails: bool  # target_bytes - 1 was tried there and failed
    host_bytes: int  # the same minimum in the host (64-bit) TFLM interpreter
    tflm_arena_used_bytes: int  # TFLM's arena_used_bytes() (under-reports, tflite-micro#2738)
    reserved_bytes: int  # the static tensor_arena in the image
    trials: int


class InstructionCounts(Frozen):
    """Executed instructions per Invoke(), from SysTick under qemu -icount shift=0."""

    min: int
    median: int
    max: int
    per_sample: list[int]


class FirmwareLatency(Frozen):
    """Device latency, estimated (not measured): executed instructions x [firmware] cpi / clock_mhz."""

    min_ms: float
    median_ms: float
    max_ms: float
    cpi: float
    cpi_source: str
    clock_mhz: float
    clock_source: str
    method: str = "estimate: executed instructions x [firmware] cpi / clock_mhz"


class FirmwareAgreement(Frozen):
    reference: str  # "host TFLM" or "LiteRT"
    bit_exact: bool
    mismatched_elements: int
    max_abs_diff: float
    description: str  # names the first differing sample, output, element and values


class FirmwareStage(Frozen):
    """The real firmware image (TFLM + CMSIS-NN, arm-none-eabi-g++) run on an emulated Cortex-M under QEMU."""

    model: str  # the artifact compiled in (file name in the output folder)
    core: str
    qemu_machine: str
    samples: int
    sample_source: str
    elf: FirmwareElf
    flash_limit_bytes: int  # the linker's regions: the tighter of the board and the budgets
    ram_limit_bytes: int
    arena: FirmwareArena
    stack_used_bytes: int
    stack_reserved_bytes: int
    instructions: InstructionCounts
    device_latency: FirmwareLatency | None = Field(
        description="estimated device latency; None when the profile gives no [firmware] cpi and clock_mhz")
    bit_exact: bool  # every output of every sample equals host TFLM
    vs_host_tflm: FirmwareAgreement
    vs_litert: FirmwareAgreement
    tflm_library_cached: bool  # the compiled TFLM library came from the user's cache
    build_seconds: float  # harness + model compile and link
    qemu_seconds: float


class CompositionStep(Frozen):
    stage: str  # "float", "prune", "sparsify", "cluster", "quantize"
    params: int
    accuracy: float | None  # top-1 percent after this step


class Composition(Frozen):
    """Each step's share (formulas in the README, "Ratios"); in every report.

    Structured pruning removes parameters; zeros (unstructured sparsity) do not: they are counted apart.
    """

    compression_ratio: float  # float bytes / final bytes
    pruning_ratio: float | None  # params before / after structured pruning (1.0 without it)
    quantization_bit_ratio: str  # e.g. "32/8"
    params_before: int | None = Field(description="parameters of the float model given")
    params_after: int | None = Field(description="parameters after structured pruning (zeros still count)")
    kernel_weights: int | None = Field(description="weights of the final artifact's Conv/Depthwise/FC filters")
    zero_weights: int | None = Field(description="of those, exactly zero (read back from the artifact)")
    sparsity: float | None = Field(description="zero_weights / kernel_weights; None when not read (ONNX)")
    steps: list[CompositionStep]


class ActivationCandidate(Frozen):
    activations: str  # "int8" or "uint8"
    kind: str  # "S8S8" or "U8S8"
    p50_ms: float | None  # None when not measured
    latency_ratio: float | None  # p50 / float baseline p50
    accuracy_drop: float | None  # points against the float model, None without eval data
    metric: str | None = None  # the primary output's metric (top1, agreement, snr, ...); None without eval data
    accuracy: float | None = None  # its value: top-1 %, agreement %, SNR dB, ...; None without eval data
    within_budget: bool


class OnnxActivationsStage(Frozen):
    """int8 ONNX: which activation type was kept (quantize.onnx_activations), from which measured candidates."""

    chosen: str  # "int8" (S8S8) or "uint8" (U8S8)
    measured: bool  # False: fixed by the profile, or the benchmark was skipped
    baseline_p50_ms: float | None
    candidates: list[ActivationCandidate]


class BatteryInfo(Frozen):
    battery: str
    capacity_mah: float
    voltage_v: float
    inferences_per_second: float  # the profile's duty cycle
    average_power_mw: float
    hours: float
    days: float
    label: str  # always an estimate


class EnergyStage(Frozen):
    """Energy per inference, labelled: measured (RAPL, idle subtracted), estimate (profile power x a named
    latency figure) or unavailable (with the reason)."""

    method: EnergyMethod
    joules_per_inference: float | None
    millijoules_per_inference: float | None
    inferences_per_joule: float | None
    power_mw: float | None  # estimate: the profile's active power; measured: net power over the window
    power_source: str  # the profile constant's source, or the counter read
    latency_ms: float | None
    latency_source: str | None  # which latency figure the estimate used
    battery: BatteryInfo | None  # MCU boards with a [energy] battery
    note: str


class ConvertedOutput(Frozen):
    """One output of the converted float artifact against the source model's, on the same samples."""

    name: str  # the source (ONNX) output
    tflite_name: str
    max_abs: float
    snr_db: float


class TensorLayout(Frozen):
    """Where a source tensor is in the artifact, and how to feed or read it."""

    name: str  # the source model's name
    artifact_name: str  # the artifact's tensor (signature key)
    source_shape: list[int | None]
    artifact_shape: list[int]  # -1: dynamic
    layout: str  # e.g. "NHWC (the source model's NCHW)" or "as the source model"


class ConversionStage(Frozen):
    """ONNX -> float TFLite (onnx2tf), proven on the user's data before anything was quantized."""

    converter: str  # "onnx2tf 1.28.2"
    seconds: float
    samples: int
    sample_source: str  # "eval data", "calibration data" or "random data"
    min_snr_db: float  # the profile's [convert] min_snr_db
    outputs: list[ConvertedOutput]
    inputs_layout: list[TensorLayout]
    outputs_layout: list[TensorLayout]
    quantizer: str | None  # "ai-edge-quantizer 0.10.0"; None when nothing was quantized


class Stages(Frozen):
    """Optional stages; a section is null when the build did not run that stage."""

    prune: PruneStage | None = None
    cluster: ClusterStage | None = None
    sparsity: SparsityStage | None = None
    partial: PartialStage | None = None
    qat: QatStage | None = None
    onnx_activations: OnnxActivationsStage | None = None
    conversion: ConversionStage | None = None  # ONNX -> TFLite: the converter, its proof, the I/O layout
    mcu: McuStage | None = None
    firmware: FirmwareStage | None = None
    npu: NpuStage | None = None  # Ethos-U: Vela's compilation and estimate (profiles with [npu])
    composition: Composition | None = None
    energy: EnergyStage | None = None  # set in every build report


class Report(Frozen):
    schema_version: str = SCHEMA_VERSION
    tool: Tool
    target: Target
    input: InputInfo
    calibration: Calibration
    eval_data: str | None
    baseline: Variant
    optimized: Variant
    ratios: Ratios
    budgets: list[Budget]
    stages: Stages
    notes: list[str]
    build_seconds: float
    ok: bool
