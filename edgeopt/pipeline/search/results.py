"""The typed result of a search, written as OUT/search.json (schema: docs/search.schema.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SEARCH_SCHEMA_VERSION = "1.0"

ParamValue = str | float | int | bool


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyInfo(Frozen):
    name: str
    storage: str  # the URL without its password
    sampler: str
    seed: int | None
    model_sha256: str
    space_sha256: str
    target: str  # profile name and the first 16 hex digits of its sha256


class SpaceInfo(Frozen):
    objectives: list[str]  # minimised; the first is the primary one
    dimensions: dict[str, list[ParamValue]]
    points: int


class TrialRecord(Frozen):
    number: int
    state: str  # COMPLETE, FAIL, PRUNED (surplus or a grid repeat: never built), RUNNING
    params: dict[str, ParamValue]
    values: dict[str, float] | None  # objective -> value (COMPLETE only)
    feasible: bool | None  # every budget of its build met
    violations: list[str]
    accuracy: float | None  # top-1 percent of the optimized artifact
    bytes: int | None
    p50_ms: float | None  # measured in the trial's build (under the timing lock)
    folder: str | None  # the trial's build folder
    host: str | None  # the machine that built it
    error: str | None


class FrontPoint(Frozen):
    number: int
    values: dict[str, float]
    params: dict[str, ParamValue]
    accuracy: float | None
    bytes: int | None
    p50_ms_trial: float | None  # from the trial's own build
    p50_ms_final: float | None = Field(description="from the final interleaved round (front + baseline), if run")
    latency_ratio_final: float | None = Field(description="p50_ms_final / baseline p50 in the same round")


class FinalRound(Frozen):
    baseline: str
    baseline_p50_ms: float
    runs_each: int
    threads: int
    runtime: str
    artifacts: list[str]


class LatencyMethod(Frozen):
    trials: str  # how each trial's latency was measured
    final_round: FinalRound | None  # one interleaved benchmark over every local front artifact and the baseline
    lock: str | None  # the file held while timing


class Chosen(Frozen):
    number: int
    params: dict[str, ParamValue]
    values: dict[str, float]
    folder: str  # OUT/best: a normal build (artifact, report.json, manifest, C files for MCUs)
    how: str  # "copied from trials/NNNN" or "rebuilt here"


class Counts(Frozen):
    requested: int
    complete: int
    failed: int
    surplus: int  # asked after the study had its N trials; never built
    repeats: int  # grid points that were a finished trial's build again; never built
    running: int


class SearchResult(Frozen):
    schema_version: str = SEARCH_SCHEMA_VERSION
    tool_version: str
    model: str
    target: str
    device_class: str
    study: StudyInfo
    space: SpaceInfo
    counts: Counts
    trials: list[TrialRecord]
    front: list[FrontPoint]  # non-dominated among the feasible trials (among all when none is feasible)
    chosen: Chosen | None  # None: no trial met every budget (exit 3)
    latency: LatencyMethod
    notes: list[str]
    wall_seconds: float
    ok: bool
