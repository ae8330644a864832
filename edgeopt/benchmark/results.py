"""Saved benchmark results: the JSON `edgeopt bench --json` prints, and reading it back for --compare."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.benchmark.protocol import BenchResult, baseline_ratios
from edgeopt.errors import InputError

# 1.1: cpu_ms, cores, load_1m, warnings, input_dims; 1.2: probe, fingerprint.emulation (all optional when read)
SCHEMA = "edgeopt.bench/1.2"
READABLE = frozenset({"edgeopt.bench/1", "edgeopt.bench/1.1", SCHEMA})  # files and device answers this version reads


@dataclass(frozen=True)
class BenchReport:
    results: tuple[BenchResult, ...]

    @property
    def ratios(self) -> list[dict[str, float | None] | None]:
        return baseline_ratios(self.results)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "results": [{**r.to_dict(samples), "ratio": q} for r, q in zip(self.results, self.ratios, strict=True)],
        }

    def to_json(self, samples: bool = True) -> str:
        return json.dumps(self.to_dict(samples), indent=2) + "\n"


Ms = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=4096)]
Count = Annotated[int, Field(ge=0, le=2**31)]


class _In(BaseModel):
    """A result file or a device's answer is untrusted: every field typed, bounded and finite before use."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _LatencyIn(_In):
    p50: Ms
    p90: Ms
    p95: Ms
    p99: Ms
    mean: Ms
    std: Ms
    min: Ms
    max: Ms
    iqr: Ms
    runs: Count


class _FingerprintIn(_In):
    host: Text
    cpu: Text
    cores: Count
    arch: Text
    os: Text
    python: Text
    runtime: Text
    runtime_version: Text
    implementation: Text
    threads: Count
    delegate: Text
    graph_optimization: Text | None = None
    emulation: Text | None = None


class _DimsIn(_In):
    name: Text
    dims: Annotated[list[Annotated[int, Field(ge=0, le=2**31)]], Field(max_length=64)]


class _ResultIn(_In):
    model: Text
    runtime: Text
    implementation: Text | None = None
    runtime_version: Text = "unknown"
    delegate: Text = ""
    threads: Annotated[int, Field(ge=0, le=4096)]
    init_ms: Ms = 0.0
    probe_ms: Ms | None = None
    probe: Text | None = None
    first_ms: Ms = 0.0
    warmup: Count = 0
    latency: _LatencyIn
    peak_rss_mb: Ms | None = None
    rss_delta_mb: Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)] | None = None
    fingerprint: _FingerprintIn | None = None
    device: Text = "local"
    inputs: Text = "random"
    interleaved: bool = False
    input_shapes: Text = ""
    input_dims: Annotated[list[_DimsIn], Field(max_length=1024)] = []
    cpu_ms: Ms | None = None
    cores: Annotated[int, Field(ge=1, le=2**20)] | None = None
    load_1m: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] | None = None
    samples_ms: list[Ms] = []


def _result(d: Any) -> BenchResult:
    checked = _ResultIn.model_validate(d).model_dump()
    if checked["implementation"] is None:
        checked["implementation"] = checked["runtime"]
    return BenchResult.from_dict(checked)


def parse_report(data: Any, source: str) -> BenchReport:
    """Accept what `edgeopt bench --json` prints, a list of results, or one result."""
    if isinstance(data, dict) and "results" in data:
        schema = data.get("schema", SCHEMA)
        if schema not in READABLE:
            msg = (f"{source}: bench result schema {str(schema)[:40]!r} is not one this edgeopt reads "
                   f"({', '.join(sorted(READABLE))}); use the same edgeopt version on both sides")
            raise InputError(msg)
        items = data["results"]
    elif isinstance(data, dict):
        items = [data]
    else:
        items = data
    if not isinstance(items, list) or not items:
        msg = f"{source}: no benchmark results; give a file written by `edgeopt bench --json`"
        raise InputError(msg)
    try:
        return BenchReport(tuple(_result(d) for d in items))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = (
            f"{source}: not an edgeopt bench result ({where}: {err['msg'][:120]}); "
                         "give a file written by `edgeopt bench --json`"
        )
        raise InputError(msg) from None
    except (KeyError, TypeError, ValueError) as exc:
        msg = (
            f"{source}: not an edgeopt bench result (missing or bad field {str(exc)[:120]}); "
                         "give a file written by `edgeopt bench --json`"
        )
        raise InputError(msg) from None


def load_report(path: Path) -> BenchReport:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"result file not found: {path}"
        raise InputError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise InputError(msg) from None
    try:
        data = json.loads(text)
    except RecursionError:
        msg = f"{path} is nested too deeply to be an edgeopt bench result"
        raise InputError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"{path} is not JSON ({exc.msg} at line {exc.lineno}); give a file written by `edgeopt bench --json`"
        raise InputError(msg) from None
    return parse_report(data, str(path))


def report_of(results: Sequence[BenchResult]) -> BenchReport:
    return BenchReport(tuple(results))
