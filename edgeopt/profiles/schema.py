"""The profile schema. Unknown keys are refused; every model is frozen."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from edgeopt.errors import InputError
from edgeopt.profiles.energy import EnergySection
from edgeopt.profiles.sparsity import SparsitySection
from edgeopt.runtime.base import MAX_THREADS, THREADS_RULE, check_threads
from edgeopt.vocabulary import (
    AccuracyMetric,
    ClusterInit,
    DeviceClass,
    GraphOptimization,
    PruneAllocation,
    PruneCriterion,
    RuntimeName,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class OutputFormat(StrEnum):
    TFLITE = "tflite"
    ONNX = "onnx"


class Scheme(StrEnum):
    NONE = "none"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT16X8 = "int16x8"


class IOType(StrEnum):
    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"


class CalibrationMethod(StrEnum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class QuantFormat(StrEnum):
    QDQ = "qdq"
    QOPERATOR = "qoperator"


class OnnxActivations(StrEnum):
    """Type of the int8 activations of an ONNX artifact (weights are always int8)."""

    AUTO = "auto"  # measure S8S8 and U8S8, keep the faster that meets the accuracy budget
    INT8 = "int8"  # S8S8
    UINT8 = "uint8"  # U8S8, onnxruntime's recommendation on x86


# The closed sets the CLI also offers live in edgeopt.vocabulary; profiles name the same classes.
RuntimeChoice = RuntimeName
GraphOpt = GraphOptimization


class ConvertSection(Strict):
    format: OutputFormat = OutputFormat.TFLITE
    opset: Annotated[int, Field(ge=13, le=21)] = 17
    min_snr_db: Annotated[float, Field(ge=0, le=200, description="an ONNX -> TFLite conversion must agree with the "
                                       "ONNX model to this SNR (dB) on every output, or the build stops")] = 40.0


class QuantizeSection(Strict):
    scheme: Scheme = Scheme.INT8
    input_type: IOType = IOType.FLOAT32
    output_type: IOType = IOType.FLOAT32
    per_channel: bool = True
    calibration_samples: Annotated[int, Field(ge=1, le=100_000)] = 200
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    onnx_format: QuantFormat = QuantFormat.QDQ
    onnx_activations: Annotated[OnnxActivations, Field(description="int8 ONNX activations: auto, int8 or uint8")] = \
        OnnxActivations.AUTO

    @model_validator(mode="after")
    def _io_fits_scheme(self) -> QuantizeSection:
        for key in ("input_type", "output_type"):
            io = getattr(self, key)
            if io in (IOType.INT8, IOType.UINT8) and self.scheme is not Scheme.INT8:
                msg = f"{key} = '{io}' needs scheme = 'int8' (got '{self.scheme}')"
                raise ValueError(msg)
            if io is IOType.INT16 and self.scheme is not Scheme.INT16X8:
                msg = f"{key} = 'int16' needs scheme = 'int16x8' (got '{self.scheme}')"
                raise ValueError(msg)
        return self


def _threads(n: int) -> int:
    try:
        return check_threads(n)
    except InputError:
        raise ValueError(THREADS_RULE) from None  # the loader adds "(got N)"


class RuntimeSection(Strict):
    name: RuntimeChoice = RuntimeChoice.LITERT
    # Bounds in the JSON schema; the rule itself is check_threads, the one the CLI applies to --threads.
    threads: Annotated[int, Field(description="0 means all cores", json_schema_extra={"minimum": 0, "maximum": MAX_THREADS}),
                       AfterValidator(_threads)] = 1
    xnnpack: bool = True
    graph_optimization: GraphOpt = GraphOpt.ALL


class BenchmarkSection(Strict):
    warmup_runs: Annotated[int, Field(ge=0)] = 1
    warmup_seconds: Annotated[float, Field(ge=0)] = 0.5
    runs: Annotated[int, Field(ge=1)] = 50
    min_seconds: Annotated[float, Field(ge=0)] = 1.0


def _off(value: object) -> object:
    """`false` turns an accuracy floor off (TOML has no null, and a profile that extends one inherits it)."""
    if value is True:
        msg = "true is not a limit: give a number, or false to turn the check off"
        raise ValueError(msg)
    return None if value is False else value


Floor = BeforeValidator(_off)


class BudgetsSection(Strict):
    max_model_kb: Annotated[float, Field(gt=0)] | None = None
    max_latency_ms: Annotated[float, Field(gt=0, description="limit on p90 latency")] | None = None
    max_accuracy_drop: Annotated[float, Field(ge=0, le=100, description="percentage points")] | None = None
    max_latency_ratio: Annotated[float, Field(gt=0, description="optimized p50 / float baseline p50")] | None = None
    max_flash_kb: Annotated[float, Field(gt=0)] | None = None
    max_ram_kb: Annotated[float, Field(gt=0)] | None = None
    # max_accuracy_drop is for top1 / agreement outputs; min_snr_db and min_cosine are floors on every output
    # (cosine: outputs of more than one value per sample), whatever its metric; false turns one off
    min_snr_db: Annotated[float | None, Floor, Field(description="least output SNR against the float model, dB, on "
                                                     "every output; false: off")] = None
    min_cosine: Annotated[Annotated[float, Field(ge=-1, le=1)] | None, Floor,
                          Field(description="least mean cosine similarity on every output of 2+ values; false: off")] = None
    max_abs_error: Annotated[float, Field(ge=0, description="largest absolute output error")] | None = None


class ValidateSection(Strict):
    """How each output is scored: one metric for all, a list (one per output) or a table by output name."""

    metric: AccuracyMetric | tuple[AccuracyMetric, ...] | dict[str, AccuracyMetric] = AccuracyMetric.AUTO


class McuSection(Strict):
    """Microcontroller facts for TFLite Micro delivery (used when device_class = 'embedded-mcu').

    Flash budget = model bytes + runtime_flash_kb; RAM budget = tensor arena (measured in the
    real TFLM interpreter, plus the margin) + application input/output buffers.
    """

    core: str = ""
    ram_kb: Annotated[float, Field(gt=0, description="board SRAM available to the model")] | None = None
    flash_kb: Annotated[float, Field(gt=0, description="board flash available to the application")] | None = None
    runtime_flash_kb: Annotated[float, Field(ge=0, description="flash for TFLM + kernels + app code")] = 64.0
    arena_margin_percent: Annotated[float, Field(ge=0, le=1000)] = 10.0
    arena_margin_bytes: Annotated[int, Field(ge=0)] = 1024
    allow_int16x8: bool = False
    sustained_macs_per_second: Annotated[float, Field(gt=0, description="int8 MAC/s the core sustains")] | None = None


class FirmwareSection(Strict):
    """Board facts for the real firmware image (`edgeopt mcu run`): executed instructions x cpi / clock
    is the device latency estimate. Each constant carries its source. `run = true` makes `edgeopt build`
    build and run that image as its firmware stage (also `edgeopt build --firmware`)."""

    run: bool = False  # off by default: the stage compiles and emulates (seconds to minutes)

    clock_mhz: Annotated[float, Field(gt=0, description="core clock the firmware runs at")] | None = None
    clock_source: str = ""
    cpi: Annotated[float, Field(gt=0, le=20, description="cycles per executed instruction, an estimate")] | None = None
    cpi_source: str = ""


class NpuKind(StrEnum):
    """The Arm Ethos-U NPUs Vela compiles for."""

    ETHOS_U55 = "ethos-u55"
    ETHOS_U65 = "ethos-u65"
    ETHOS_U85 = "ethos-u85"


# MACs per cycle each NPU is built with: Vela's --accelerator-config choices (ethos-u-vela 5.2.0)
NPU_MACS: dict[NpuKind, tuple[int, ...]] = {
    NpuKind.ETHOS_U55: (32, 64, 128, 256),
    NpuKind.ETHOS_U65: (256, 512),
    NpuKind.ETHOS_U85: (128, 256, 512, 1024, 2048),
}


class NpuSection(Strict):
    """An Arm Ethos-U NPU beside the Cortex-M core. `edgeopt build` compiles the int8 artifact for it with Vela
    (`pip install 'edgeopt[ethos-u]'`) and reports which operators run on the NPU, its SRAM and flash, and
    Vela's cycle estimate. system_config and memory_mode name sections of Vela's bundled Arm/vela.ini."""

    kind: NpuKind
    macs: Annotated[int, Field(description="MACs per cycle the NPU is built with (e.g. 128 for an Ethos-U55-128)")]
    system_config: Annotated[str, Field(min_length=1, description="a System_Config section of Vela's Arm/vela.ini")] = \
        "Ethos_U55_High_End_Embedded"
    memory_mode: Annotated[str, Field(min_length=1, description="a Memory_Mode section of Vela's Arm/vela.ini")] = \
        "Shared_Sram"
    source: str = ""  # where the configuration comes from (the board's documentation)
    timeout_seconds: Annotated[float, Field(gt=0, le=3600, description="Vela is stopped after this long")] = 300.0

    @model_validator(mode="after")
    def _macs_fit_kind(self) -> NpuSection:
        allowed = NPU_MACS[self.kind]
        if self.macs not in allowed:
            msg = f"npu.macs = {self.macs} is not built for '{self.kind}'; use one of {', '.join(map(str, allowed))}"
            raise ValueError(msg)
        return self

    @property
    def accelerator(self) -> str:
        """Vela's --accelerator-config, e.g. 'ethos-u55-128'."""
        return f"{self.kind.value}-{self.macs}"


class PruneSection(Strict):
    """Structural channel pruning before conversion. Off while ratio and macs_reduction are 0."""

    macs_reduction: Annotated[float, Field(ge=0, lt=1, description="fraction of MACs to remove")] = 0.0
    ratio: Annotated[float, Field(ge=0, lt=1, description="fraction of channels to remove (instead of macs_reduction)")] = 0.0
    criterion: PruneCriterion = PruneCriterion.L1
    allocation: PruneAllocation = PruneAllocation.GLOBAL
    round_to: Annotated[int, Field(ge=1, le=256, description="channel counts stay multiples of this (SIMD width)")] = 1
    ignore: tuple[str, ...] = ()
    epochs: Annotated[int, Field(ge=0, le=1000, description="fine-tuning epochs (needs training data)")] = 10
    learning_rate: Annotated[float, Field(gt=0, le=1, description="Adam learning rate for fine-tuning")] = 1e-3
    allow_without_finetune: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> PruneSection:
        if self.ratio and self.macs_reduction:
            msg = "set prune.ratio or prune.macs_reduction, not both"
            raise ValueError(msg)
        return self


class ClusterSection(Strict):
    """Weight sharing before conversion: k-means per layer on Conv/Dense/Depthwise/Separable kernels."""

    clusters: Annotated[int, Field(ge=2, le=65536, description="shared values per kernel")] = 16
    layers: Annotated[str | None, Field(description="regex searched in layer names; unset = all clusterable layers")] = None
    init: ClusterInit = ClusterInit.LINEAR
    epochs: Annotated[int, Field(ge=0, le=1000, description="centroid fine-tuning epochs (needs training data)")] = 0
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-4

    @model_validator(mode="after")
    def _regex_compiles(self) -> ClusterSection:
        import re

        if self.layers:
            try:
                re.compile(self.layers)
            except re.error as exc:
                msg = f"cluster.layers = '{self.layers}' is not a valid regular expression ({exc})"
                raise ValueError(msg) from None
        return self


class Fallback(StrEnum):
    """Where a layer moved out of int8 goes."""

    FLOAT = "float"
    INT16X8 = "int16x8"
    QAT = "qat"  # not a place for one layer: the whole model is fine-tuned on the int8 grid (needs [qat], --train)


class PartialSection(Strict):
    """Partial quantization with accuracy control, against budgets.max_accuracy_drop on the eval data."""

    accuracy_control: bool = True
    fallbacks: Annotated[tuple[Fallback, ...], Field(min_length=1, description="allowed, in order of preference")] = (Fallback.FLOAT,)
    keep_float: Annotated[tuple[str, ...], Field(description="regexes of layers always kept out of int8")] = ()
    max_steps: Annotated[int, Field(ge=1, le=1000, description="most layers moved out of int8 one at a time")] = 8

    @model_validator(mode="after")
    def _keep_float_is_float(self) -> PartialSection:
        import re

        if self.keep_float and Fallback.FLOAT not in self.fallbacks:
            msg = "partial.keep_float needs 'float' in partial.fallbacks; add it, or empty keep_float"
            raise ValueError(msg)
        for p in self.keep_float:
            try:
                re.compile(p)
            except re.error as exc:
                msg = f"partial.keep_float pattern '{p}' is not a valid regular expression ({exc})"
                raise ValueError(msg) from None
        return self


class QatSection(Strict):
    """Quantization-aware training: fine-tune with int8 fake quantization (needs training data, --train)."""

    epochs: Annotated[int, Field(ge=1, le=1000, description="QAT epochs")] = 3
    learning_rate: Annotated[float, Field(gt=0, le=1, description="Adam learning rate")] = 1e-4
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 32
    layers: Annotated[str | None, Field(description="regex of layer names whose weights train; unset = all")] = None
    freeze_bn_after: Annotated[int, Field(ge=0, le=1000, description="epochs BatchNorm statistics still follow the batches")] = 0
    per_channel: Annotated[bool | None, Field(description="per-channel weights; unset = quantize.per_channel")] = None

    @model_validator(mode="after")
    def _regex_compiles(self) -> QatSection:
        import re

        if self.layers:
            try:
                re.compile(self.layers)
            except re.error as exc:
                msg = f"qat.layers = '{self.layers}' is not a valid regular expression ({exc})"
                raise ValueError(msg) from None
        return self


class Objective(StrEnum):
    """What `edgeopt search` minimises, measured in each trial's build report."""

    ACCURACY_DROP = "accuracy_drop"  # points lost against the float model (100 - agreement without labels)
    BYTES = "bytes"  # artifact size
    P50_LATENCY = "p50_latency"  # ms, median on this host's runtime
    ARENA = "arena"  # TFLM tensor arena, bytes (embedded-mcu)
    FLASH = "flash"  # model + runtime flash, bytes (embedded-mcu)
    DEVICE_LATENCY = "device_latency"  # ms, estimated on the board (embedded-mcu with a MAC rate or [firmware])
    NPU_LATENCY = "npu_latency"  # ms, Vela's estimate of the NPU part of one inference (profiles with [npu])


MCU_OBJECTIVES = frozenset({Objective.ARENA, Objective.FLASH, Objective.DEVICE_LATENCY, Objective.NPU_LATENCY})


class FloatRange(Strict):
    """`{ low = 0.0, high = 0.6, step = 0.2 }`: low, low+step, ... up to high."""

    low: Annotated[float, Field(ge=0, lt=1)]
    high: Annotated[float, Field(ge=0, lt=1)]
    step: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.high < self.low:
            msg = f"range high = {self.high} is below low = {self.low}; swap them"
            raise ValueError(msg)
        return self

    def values(self) -> tuple[float, ...]:
        n = int(round((self.high - self.low) / self.step + 1e-9))
        return tuple(round(self.low + i * self.step, 6) for i in range(n + 1))


class SearchSection(Strict):
    """The space `edgeopt search` explores; every dimension is optional (absent = the profile's own value).

    Budgets are the profile's [budgets]; the first objective is the one the chosen candidate is best on.
    """

    objectives: Annotated[tuple[Objective, ...], Field(min_length=1, description="minimised; the first is primary")] = (
        Objective.ACCURACY_DROP, Objective.BYTES)
    macs_reduction: Annotated[tuple[Annotated[float, Field(ge=0, lt=1)], ...] | FloatRange | None,
                              Field(description="prune: fractions of MACs to remove (list or range); 0 = off")] = None
    clusters: Annotated[tuple[Annotated[int, Field(ge=0, le=65536)], ...] | None,
                        Field(description="weight sharing: cluster counts; 0 = off")] = None
    schemes: Annotated[tuple[Scheme, ...] | None, Field(description="quantization schemes")] = None
    per_channel: Annotated[tuple[bool, ...] | None, Field(description="int8/int16x8 per-channel weights on/off")] = None
    calibration_methods: Annotated[tuple[CalibrationMethod, ...] | None,
                                   Field(description="ONNX static int8 calibration methods")] = None
    keep_float_top: Annotated[tuple[Annotated[int, Field(ge=0, le=64)], ...] | None,
                              Field(description="int8: keep the N most int8-sensitive layers in float (0 = none)")] = None
    qat: Annotated[tuple[bool, ...] | None, Field(description="int8: quantization-aware training on/off (needs --train)")] = None

    @model_validator(mode="after")
    def _well_formed(self) -> SearchSection:
        if len(set(self.objectives)) != len(self.objectives):
            msg = "search.objectives names an objective twice; list each once"
            raise ValueError(msg)
        for key in ("macs_reduction", "clusters", "schemes", "per_channel", "calibration_methods", "keep_float_top", "qat"):
            v = getattr(self, key)
            if isinstance(v, tuple) and not v:
                msg = f"search.{key} is an empty list; give at least one value, or remove the key"
                raise ValueError(msg)
            if isinstance(v, tuple) and len(set(v)) != len(v):
                msg = f"search.{key} lists a value twice; list each once"
                raise ValueError(msg)
        if self.clusters is not None and 1 in self.clusters:
            msg = "search.clusters = 1 would share one value per kernel; use 0 (off) or 2 and more"
            raise ValueError(msg)
        return self

    def macs_values(self) -> tuple[float, ...] | None:
        v = self.macs_reduction
        return v.values() if isinstance(v, FloatRange) else v


class Profile(Strict):
    """A resolved target profile (after `extends`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, populate_by_name=True,
                              serialize_by_alias=True)  # dumps say [validate], as profiles are written

    name: str
    description: str = ""
    device_class: DeviceClass = DeviceClass.MOBILE_CPU
    convert: ConvertSection = ConvertSection()
    quantize: QuantizeSection = QuantizeSection()
    runtime: RuntimeSection = RuntimeSection()
    benchmark: BenchmarkSection = BenchmarkSection()
    budgets: BudgetsSection = BudgetsSection()
    # [validate]: the accuracy metric per output (`validate` itself would shadow pydantic's BaseModel.validate)
    validation: ValidateSection = Field(ValidateSection(), alias="validate")
    prune: PruneSection = PruneSection()  # [prune]: off unless ratio or macs_reduction > 0
    cluster: ClusterSection | None = None  # [cluster]: weight sharing; absent = off
    sparsity: SparsitySection | None = None  # [sparsity]: weight-level magnitude pruning; absent = off
    partial: PartialSection | None = None  # [partial]: accuracy-controlled partial quantization; absent = off
    qat: QatSection | None = None  # [qat]: quantization-aware training settings (with --train); absent = off
    mcu: McuSection = McuSection()
    firmware: FirmwareSection = FirmwareSection()  # [firmware]: clock and CPI for `edgeopt mcu run`
    npu: NpuSection | None = None  # [npu]: an Ethos-U NPU, compiled for with Vela; absent = none
    energy: EnergySection | None = None  # [energy]: device power with sources; absent = no estimate
    search: SearchSection | None = None  # [search]: the space and objectives of `edgeopt search`; absent = none

    @model_validator(mode="after")
    def _runtime_fits_format(self) -> Profile:
        fmt, rt = self.convert.format, self.runtime.name
        if fmt is OutputFormat.ONNX and rt is not RuntimeChoice.ONNXRUNTIME:
            msg = f"runtime.name = '{rt}' cannot run convert.format = 'onnx'; use 'onnxruntime'"
            raise ValueError(msg)
        if fmt is OutputFormat.TFLITE and rt is RuntimeChoice.ONNXRUNTIME:
            msg = "runtime.name = 'onnxruntime' cannot run convert.format = 'tflite'; use 'litert' or 'tflm'"
            raise ValueError(msg)
        if fmt is OutputFormat.ONNX and self.quantize.scheme is Scheme.INT16X8:
            msg = "quantize.scheme = 'int16x8' is TFLite-only; use 'int8' for ONNX"
            raise ValueError(msg)
        if fmt is OutputFormat.ONNX and (self.quantize.input_type is not IOType.FLOAT32 or self.quantize.output_type is not IOType.FLOAT32):
            msg = "ONNX artifacts keep float32 input/output; set quantize.input_type/output_type = 'float32'"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _firmware_fits_target(self) -> Profile:
        if self.firmware.run and self.device_class is not DeviceClass.EMBEDDED_MCU:
            msg = "firmware.run = true needs device_class = 'embedded-mcu' (it builds a Cortex-M image); remove it"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _npu_fits_target(self) -> Profile:
        if self.npu is None:
            return self
        if self.device_class is not DeviceClass.EMBEDDED_MCU or self.convert.format is not OutputFormat.TFLITE:
            msg = ("[npu] needs device_class = 'embedded-mcu' and convert.format = 'tflite' (Vela compiles a "
                   "TFLite Micro model); remove [npu] or extend an embedded-mcu profile")
            raise ValueError(msg)
        if self.quantize.scheme not in (Scheme.INT8, Scheme.INT16X8):
            msg = f"[npu] runs integer models; set quantize.scheme = 'int8' (got '{self.quantize.scheme}')"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _partial_fits_target(self) -> Profile:
        """[partial] against the budgets, the device and the format: refused when the profile is loaded."""
        part = self.partial
        if part is None:
            return self
        if part.accuracy_control and self.budgets.max_accuracy_drop is None:
            msg = (
                "[partial] accuracy_control needs budgets.max_accuracy_drop (the drop it keeps within); "
                "set it, or partial.accuracy_control = false"
            )
            raise ValueError(msg)
        mcu = self.device_class is DeviceClass.EMBEDDED_MCU
        if mcu and Fallback.FLOAT in part.fallbacks:
            msg = (
                "an MCU runs int8 kernels only and has no float fallback; set partial.fallbacks = "
                "['int16x8'] (with mcu.allow_int16x8 = true), or remove [partial]"
            )
            raise ValueError(msg)
        if mcu and Fallback.INT16X8 in part.fallbacks and not self.mcu.allow_int16x8:
            msg = (
                "partial.fallbacks allows 'int16x8' but mcu.allow_int16x8 is false; set "
                "mcu.allow_int16x8 = true if your TFLM kernels run int16x8, or drop the fallback"
            )
            raise ValueError(msg)
        if self.convert.format is OutputFormat.ONNX and Fallback.INT16X8 in part.fallbacks:
            msg = "int16x8 is TFLite-only; set partial.fallbacks = ['float'] for ONNX"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _qat_fits(self) -> Profile:
        names_qat = self.partial is not None and Fallback.QAT in self.partial.fallbacks
        if names_qat and self.qat is None:
            msg = (
                "partial.fallbacks names 'qat' but the profile has no [qat] section; add [qat] "
                             "(epochs, learning_rate, batch_size) or drop 'qat' from the fallbacks"
            )
            raise ValueError(msg)
        if self.qat is not None and self.quantize.scheme is not Scheme.INT8:
            msg = f"[qat] trains for int8; it needs quantize.scheme = 'int8' (got '{self.quantize.scheme}')"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _search_fits_target(self) -> Profile:
        """[search] against the device class and the format: a dimension the target cannot take is refused by name."""
        sr = self.search
        if sr is None:
            return self
        mcu = self.device_class is DeviceClass.EMBEDDED_MCU
        onnx = self.convert.format is OutputFormat.ONNX
        schemes = sr.schemes or (self.quantize.scheme,)
        for s in sr.schemes or ():
            if mcu and s in (Scheme.FLOAT16, Scheme.DYNAMIC, Scheme.NONE):
                msg = (f"search.schemes: '{s}' is not allowed for device class 'embedded-mcu' (TFLite Micro runs "
                       "int8 kernels); use 'int8' (or 'int16x8' with mcu.allow_int16x8 = true)")
                raise ValueError(msg)
            if mcu and s is Scheme.INT16X8 and not self.mcu.allow_int16x8:
                msg = "search.schemes: 'int16x8' needs mcu.allow_int16x8 = true on this board; set it or drop 'int16x8'"
                raise ValueError(msg)
            if onnx and s is Scheme.INT16X8:
                msg = "search.schemes: 'int16x8' is TFLite-only; drop it for an ONNX target"
                raise ValueError(msg)
        for o in sr.objectives:
            if o in MCU_OBJECTIVES and not mcu:
                msg = (f"search.objectives: '{o}' is measured for device class 'embedded-mcu' only (this profile is "
                       f"'{self.device_class}'); use accuracy_drop, bytes or p50_latency")
                raise ValueError(msg)
        if Objective.DEVICE_LATENCY in sr.objectives and self.mcu.sustained_macs_per_second is None and not (
                self.firmware.run and self.firmware.cpi and self.firmware.clock_mhz):
            msg = ("search.objectives: 'device_latency' needs mcu.sustained_macs_per_second (or [firmware] run with "
                   "cpi and clock_mhz); set it or drop the objective")
            raise ValueError(msg)
        if Objective.NPU_LATENCY in sr.objectives and self.npu is None:
            msg = ("search.objectives: 'npu_latency' is Vela's estimate for the profile's Ethos-U and this profile has "
                   "no [npu]; add [npu] (kind, macs) or use device_latency")
            raise ValueError(msg)
        if sr.calibration_methods is not None and not onnx:
            msg = "search.calibration_methods applies to ONNX targets only (convert.format = 'onnx'); remove it"
            raise ValueError(msg)
        if sr.calibration_methods is not None and Scheme.INT8 not in schemes:
            msg = "search.calibration_methods needs 'int8' among the schemes searched; add it or remove the key"
            raise ValueError(msg)
        if sr.keep_float_top is not None and any(sr.keep_float_top):
            if mcu:
                msg = "search.keep_float_top: an MCU has no float fallback; remove it (or use [0])"
                raise ValueError(msg)
            if Scheme.INT8 not in schemes:
                msg = "search.keep_float_top needs 'int8' among the schemes searched; add it or remove the key"
                raise ValueError(msg)
        if sr.qat is not None and True in sr.qat and Scheme.INT8 not in schemes:
            msg = "search.qat = [true] trains for int8 but no scheme searched is 'int8'; add 'int8' or drop qat"
            raise ValueError(msg)
        if sr.per_channel is not None and not {Scheme.INT8, Scheme.INT16X8} & set(schemes):
            msg = "search.per_channel applies to int8 / int16x8 only and no such scheme is searched; remove it"
            raise ValueError(msg)
        return self
