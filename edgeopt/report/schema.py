"""report.json, typed. `edgeopt report-schema` / docs/report.schema.json publish it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from edgeopt.vocabulary import DeviceClass

SCHEMA_VERSION = "1.0"


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


class AccuracyInfo(Frozen):
    metric: str  # "top1" (labels given) or "agreement" (no labels)
    reference: str  # the float model it is compared with
    value: float | None  # top-1 accuracy, percent
    reference_value: float | None  # the float model's top-1, percent
    drop: float | None  # percentage points lost against the float model
    agreement: float  # percent of samples with the same top-1 as the float model
    snr_db: float  # output SNR against the float model (capped at 200 dB)
    samples: int


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
    where: str  # "local" or "ssh://host"


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
    latency_p50: float | None  # optimized p50 / baseline p50


class Calibration(Frozen):
    source: str  # a path, "random" or "none"
    samples: int


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
    stages: dict[str, Any]  # optional stage reports: prune, cluster, partial, mcu
    notes: list[str]
    build_seconds: float
    ok: bool
