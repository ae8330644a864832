"""The measurement protocol (defaults follow LiteRT's benchmark_model).

Warmup until both `warmup_runs` and `warmup_seconds` are met, then measure until
both `runs` and `min_seconds` are met. Each timed call is one bare invoke on
inputs set once, so the loop adds as little as a Python loop can.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.benchmark.stats import LatencyStats, summarize
from edgeopt.errors import DataError, InputError
from edgeopt.runtime import Runner, RunnerOptions, open_runner
from edgeopt.runtime.tensors import random_input


@dataclass(frozen=True)
class BenchSettings:
    threads: int = 1  # 0 = all cores
    xnnpack: bool = True
    warmup_runs: int = 1
    warmup_seconds: float = 0.5
    runs: int = 50
    min_seconds: float = 1.0
    max_seconds: float = 60.0  # stop measuring past this even if `runs` is not reached
    seed: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise InputError(f"threads must be >= 1 (or 0 for all cores), got {self.threads}")
        if self.runs < 1:
            raise InputError(f"runs must be >= 1, got {self.runs}")
        if self.warmup_runs < 0 or self.warmup_seconds < 0 or self.min_seconds < 0:
            raise InputError("warmup and minimum times must be >= 0")

    @property
    def resolved_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)


@dataclass(frozen=True)
class BenchResult:
    model: str
    runtime: str
    implementation: str
    runtime_version: str
    delegate: str
    threads: int
    init_ms: float
    first_ms: float
    warmup: int
    latency: LatencyStats


def make_inputs(runner: Runner, seed: int, data: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """One sample per input: from `data` (first row) or seeded random of the right dtype."""
    if data is None:
        rng = np.random.default_rng(seed)
        return [random_input(info, rng) for info in runner.inputs]
    if len(data) != len(runner.inputs):
        raise DataError(f"model has {len(runner.inputs)} input(s) but the data has {len(data)} array(s)")
    feeds = []
    for info, arr in zip(runner.inputs, data, strict=True):
        want = tuple(1 if d in (-1, 0) else d for d in info.shape)
        x = arr[:1] if arr.ndim == len(want) else arr[None]
        if x.shape[1:] != want[1:]:
            raise DataError(f"input '{info.name}' expects shape {want}, the data has {tuple(arr.shape)}")
        if np.dtype(x.dtype).name != info.dtype:
            if np.dtype(info.dtype).kind in "iu" and x.dtype.kind == "f":
                raise DataError(f"input '{info.name}' is {info.dtype} but the data is {x.dtype}; give quantized data")
            x = x.astype(info.dtype)
        feeds.append(np.ascontiguousarray(x))
    return feeds


def run_benchmark(path: Path, settings: BenchSettings, data: list[np.ndarray] | None = None) -> BenchResult:
    """Open `path` in its runtime and time it under `settings`."""
    threads = settings.resolved_threads
    t0 = time.perf_counter()
    runner = open_runner(Path(path), RunnerOptions(threads=threads, xnnpack=settings.xnnpack))
    init_ms = (time.perf_counter() - t0) * 1e3
    feeds = make_inputs(runner, settings.seed, data)
    runner.set_inputs(feeds)  # type: ignore[attr-defined]
    invoke = runner.invoke  # type: ignore[attr-defined]
    clock = time.perf_counter

    t = clock()
    invoke()
    first_ms = (clock() - t) * 1e3

    warm, start = 0, clock()
    while warm < settings.warmup_runs or (clock() - start) < settings.warmup_seconds:
        invoke()
        warm += 1
        if clock() - start > settings.max_seconds:
            break

    samples: list[float] = []
    start = clock()
    while len(samples) < settings.runs or (clock() - start) < settings.min_seconds:
        t = clock()
        invoke()
        samples.append((clock() - t) * 1e3)
        if clock() - start > settings.max_seconds and samples:
            break
    return BenchResult(
        model=str(path), runtime=str(runner.runtime), implementation=runner.implementation,
        runtime_version=runner.version, delegate=runner.delegate, threads=threads,
        init_ms=init_ms, first_ms=first_ms, warmup=warm, latency=summarize(samples),
    )
