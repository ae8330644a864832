"""The measurement protocol (defaults follow LiteRT's benchmark_model).

Warmup until both `warmup_runs` and `warmup_seconds` are met, then measure until
both `runs` and `min_seconds` are met. Each timed call is one bare invoke on
inputs set once, so the loop adds as little as a Python loop can.

Beside the wall time of each invoke, the process CPU time over the timed loops is
recorded (per invoke: all threads of the process, so a multi-threaded runtime's
workers count), with the host's usable cores and 1-minute load average
(edgeopt.benchmark.host_load), so a result says when it was measured on a busy or
oversubscribed host.

Several models (or thread counts) are measured interleaved: in rounds, each
variant runs a block of about `BLOCK_SECONDS`, so slow drift (clock scaling,
heat, background load) hits every variant alike and cancels in the ratios.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.benchmark.fingerprint import Fingerprint, collect
from edgeopt.benchmark.host_load import HostLoad, load_average, merge, usable_cores
from edgeopt.benchmark.inputs import InputData, make_feeds
from edgeopt.benchmark.memory import peak_rss_mb, rss_now_mb
from edgeopt.benchmark.stats import LatencyStats, ratios, summarize
from edgeopt.errors import InputError
from edgeopt.runtime import Runner, RunnerOptions, RuntimeName
from edgeopt.runtime.base import GraphOptimization, check_threads
from edgeopt.runtime.registry import RUNTIMES, check_model_file, import_runtime

BLOCK_SECONDS = 0.02  # one interleaving slot per variant and round
MAX_KEPT_SAMPLES = 10_000  # per-run samples kept in a result (evenly spaced); statistics use all of them


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
    graph_optimization: GraphOptimization = GraphOptimization.ALL  # onnxruntime only
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # random inputs: (input name, dims) for symbolic dims
    int_range: tuple[int, int] | None = None  # random integer inputs (not quantized): inclusive; None = 0..3

    def __post_init__(self) -> None:
        check_threads(self.threads)
        if self.runs < 1:
            msg = f"runs must be >= 1, got {self.runs}"
            raise InputError(msg)
        if self.warmup_runs < 0 or self.warmup_seconds < 0 or self.min_seconds < 0:
            msg = "warmup runs and warmup/minimum times must be >= 0"
            raise InputError(msg)
        if self.max_seconds <= 0:
            msg = f"max seconds must be > 0, got {self.max_seconds}"
            raise InputError(msg)
        object.__setattr__(self, "graph_optimization", GraphOptimization(self.graph_optimization))

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
    init_ms: float  # the runtime opening the model in the measuring process (interpreter / session creation)
    first_ms: float
    warmup: int
    latency: LatencyStats
    probe_ms: float | None = None  # checks before that: structural verification + the crash probe's child process
    probe: str | None = None  # how the crash probe ran (edgeopt.runtime.probe.ProbeRun): fresh child, reused child, ...
    peak_rss_mb: float | None = None  # process peak after measuring
    rss_delta_mb: float | None = None  # resident growth from before loading to after warmup
    fingerprint: Fingerprint | None = None
    device: str = "local"  # "local" or the ssh destination it ran on
    inputs: str = "random"  # "random (seed N)" or the data file
    interleaved: bool = False
    input_shapes: str = ""  # what was fed, e.g. "image=1x3x640x640, scale=1"
    samples_ms: tuple[float, ...] = field(default=(), repr=False)
    input_dims: tuple[tuple[str, tuple[int, ...]], ...] = ()  # the same, typed: (input name, dims) in input order
    cpu_ms: float | None = None  # process CPU time per invoke over the timed runs (all threads); None: not recorded
    cores: int | None = None  # cores the measuring process could use
    load_1m: float | None = None  # 1-minute load average around the timed runs (the higher reading)

    @property
    def host_load(self) -> HostLoad | None:
        return None if self.cores is None else HostLoad(cores=self.cores, load_1m=self.load_1m, threads=self.threads)

    @property
    def cpu_per_wall(self) -> float | None:
        """CPU time / wall time of an invoke: about the cores kept busy (1.0 = one core for the whole call)."""
        if self.cpu_ms is None or self.latency.mean <= 0:
            return None
        return self.cpu_ms / self.latency.mean

    @property
    def emulated(self) -> bool:
        return self.fingerprint is not None and self.fingerprint.emulated

    def warnings(self, threads_from: str = "--threads") -> tuple[str, ...]:
        load = self.host_load
        out = () if load is None else load.warnings(threads_from)
        if self.fingerprint is not None and self.fingerprint.emulation is not None:
            where = "this host" if self.device == "local" else self.device
            out = (f"measured on an emulated CPU ({self.fingerprint.emulation}) on {where}: the figures are the "
                   f"emulator's speed, not a real {self.fingerprint.arch} device's; measure on the device itself",
                   *out)
        return out

    @property
    def name(self) -> str:
        return Path(self.model).name

    def label(self) -> str:
        where = "" if self.device == "local" else f"@{self.device}"
        return f"{self.name}{where} [{self.threads}t]{' (emulated)' if self.emulated else ''}"

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model, "device": self.device, "runtime": self.runtime, "implementation": self.implementation,
            "runtime_version": self.runtime_version, "delegate": self.delegate, "threads": self.threads,
            "init_ms": self.init_ms, "probe_ms": self.probe_ms, "probe": self.probe, "first_ms": self.first_ms, "warmup": self.warmup,
            "latency": self.latency.to_dict(), "peak_rss_mb": self.peak_rss_mb, "rss_delta_mb": self.rss_delta_mb,
            "inputs": self.inputs, "input_shapes": self.input_shapes,
            "input_dims": [{"name": n, "dims": list(d)} for n, d in self.input_dims], "interleaved": self.interleaved,
            "cpu_ms": self.cpu_ms, "cpu_per_wall": self.cpu_per_wall, "cores": self.cores, "load_1m": self.load_1m,
            "warnings": list(self.warnings()),
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
        }
        if samples:
            d["samples_ms"] = [round(s, 6) for s in self.samples_ms]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchResult:
        fp = d.get("fingerprint")
        return cls(
            model=d["model"], runtime=d["runtime"], implementation=d.get("implementation", d["runtime"]),
            runtime_version=d.get("runtime_version", "unknown"), delegate=d.get("delegate", ""), threads=int(d["threads"]),
            init_ms=float(d.get("init_ms", 0.0)), probe_ms=None if d.get("probe_ms") is None else float(d["probe_ms"]),
            probe=None if d.get("probe") is None else str(d["probe"]),
            first_ms=float(d.get("first_ms", 0.0)), warmup=int(d.get("warmup", 0)),
            latency=LatencyStats.from_dict(d["latency"]), peak_rss_mb=d.get("peak_rss_mb"),
            rss_delta_mb=d.get("rss_delta_mb"), fingerprint=Fingerprint.from_dict(fp) if fp else None,
            device=d.get("device", "local"), inputs=d.get("inputs", "random"), interleaved=bool(d.get("interleaved", False)),
            input_shapes=str(d.get("input_shapes", "")),
            samples_ms=tuple(float(s) for s in d.get("samples_ms", ())),
            input_dims=tuple((str(i["name"]), tuple(int(x) for x in i["dims"])) for i in d.get("input_dims") or ()),
            cpu_ms=None if d.get("cpu_ms") is None else float(d["cpu_ms"]),
            cores=None if d.get("cores") is None else int(d["cores"]),
            load_1m=None if d.get("load_1m") is None else float(d["load_1m"]),
        )


@dataclass
class _Live:
    """One model opened in its runtime, warmed up, collecting samples."""

    path: Path
    runner: Runner
    invoke: Callable[[], Any]
    threads: int
    probe_ms: float
    probe: str
    init_ms: float
    first_ms: float
    warmup: int
    warm_mean_s: float
    rss_delta_mb: float | None
    shapes: str = ""  # what was fed, e.g. "image=1x3x640x640"
    dims: tuple[tuple[str, tuple[int, ...]], ...] = ()
    samples: list[float] = field(default_factory=list)
    measured_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time over the timed loops
    load_1m: float | None = None

    def done(self, s: BenchSettings) -> bool:
        return (len(self.samples) >= s.runs and self.measured_s >= s.min_seconds) or self.measured_s > s.max_seconds


def _open(path: Path, settings: BenchSettings, threads: int, data: InputData | None) -> _Live:
    clock = time.perf_counter
    options = RunnerOptions(threads=threads, xnnpack=settings.xnnpack, graph_optimization=settings.graph_optimization)
    t0 = clock()
    checked = check_model_file(Path(path), options, dict(settings.shapes), data, settings.int_range)  # in a child
    probe_ms = (clock() - t0) * 1e3
    name = checked.runtime
    import_runtime(name)
    rss0 = rss_now_mb()
    t0 = clock()
    runner = RUNTIMES[name](Path(path), options)
    init_ms = (clock() - t0) * 1e3
    feeds = make_feeds(runner.inputs, settings.seed, data, dict(settings.shapes), settings.int_range)
    runner.set_inputs(feeds)  # first row of `data`, else seeded random
    invoke = runner.invoke

    t = clock()
    invoke()
    first_ms = (clock() - t) * 1e3

    warm, start = 0, clock()
    while warm < settings.warmup_runs or (clock() - start) < settings.warmup_seconds:
        invoke()
        warm += 1
        if clock() - start > settings.max_seconds:
            break
    warm_s = clock() - start
    rss1 = rss_now_mb()
    return _Live(path=Path(path), runner=runner, invoke=invoke, threads=threads, probe_ms=probe_ms, probe=str(checked.probe),
                 init_ms=init_ms,
                 shapes=", ".join(f"{i.name}={'x'.join(map(str, np.shape(f))) or 'scalar'}"
                                  for i, f in zip(runner.inputs, feeds, strict=True)),
                 dims=tuple((i.name, tuple(int(d) for d in np.shape(f))) for i, f in zip(runner.inputs, feeds, strict=True)),
                 first_ms=first_ms, warmup=warm, warm_mean_s=(warm_s / warm) if warm else first_ms / 1e3,
                 rss_delta_mb=None if rss0 is None or rss1 is None else rss1 - rss0)


def _measure(live: _Live, settings: BenchSettings, budget: int | None = None) -> None:
    """Timed invokes: until done (budget None) or `budget` more samples."""
    clock, cpu = time.perf_counter, time.process_time
    invoke, samples = live.invoke, live.samples
    append = samples.append
    live.load_1m = merge(live.load_1m, load_average())
    base = live.measured_s
    cpu0 = cpu()
    n, start = 0, clock()
    while True:
        t = clock()
        invoke()
        append((clock() - t) * 1e3)
        n += 1
        elapsed = clock() - start
        if budget is not None:
            if n >= budget:
                break
        elif (len(samples) >= settings.runs and base + elapsed >= settings.min_seconds) or base + elapsed > settings.max_seconds:
            break
    live.measured_s = base + (clock() - start)
    live.cpu_s += cpu() - cpu0
    live.load_1m = merge(live.load_1m, load_average())


def _result(live: _Live, settings: BenchSettings, inputs: str, interleaved: bool) -> BenchResult:
    r = live.runner
    gopt = str(settings.graph_optimization) if r.runtime == RuntimeName.ONNXRUNTIME else None
    return BenchResult(
        model=str(live.path), runtime=str(r.runtime), implementation=r.implementation, runtime_version=r.version,
        delegate=r.delegate, threads=live.threads, init_ms=live.init_ms, probe_ms=live.probe_ms, probe=live.probe, first_ms=live.first_ms,
        warmup=live.warmup,
        latency=summarize(live.samples), peak_rss_mb=peak_rss_mb(), rss_delta_mb=live.rss_delta_mb,
        fingerprint=collect(str(r.runtime), r.version, r.implementation, live.threads, r.delegate, gopt),
        inputs=inputs, interleaved=interleaved, input_shapes=live.shapes, samples_ms=_thin(live.samples),
        input_dims=live.dims, cpu_ms=live.cpu_s * 1e3 / len(live.samples), cores=usable_cores(), load_1m=live.load_1m,
    )


def _thin(samples: list[float]) -> tuple[float, ...]:
    if len(samples) <= MAX_KEPT_SAMPLES:
        return tuple(samples)
    step = len(samples) / MAX_KEPT_SAMPLES
    return tuple(samples[int(i * step)] for i in range(MAX_KEPT_SAMPLES))


def _describe_inputs(settings: BenchSettings, data: InputData | None, source: str | None) -> str:
    if data is None:
        return f"random (seed {settings.seed})"
    return source or "given arrays"


def run_benchmark(path: Path, settings: BenchSettings, data: InputData | None = None,
                  data_source: str | None = None) -> BenchResult:
    """Open `path` in its runtime and time it under `settings` (one model, contiguous runs)."""
    live = _open(Path(path), settings, settings.resolved_threads, data)
    _measure(live, settings)
    return _result(live, settings, _describe_inputs(settings, data, data_source), interleaved=False)


@dataclass(frozen=True)
class Variant:
    path: Path
    threads: int


def run_interleaved(paths: Sequence[Path], settings: BenchSettings, threads: Sequence[int] | None = None,
                    data: InputData | None = None, data_source: str | None = None) -> list[BenchResult]:
    """Time every (model, thread count) in rounds, A B A B ..., so drift cancels; results in model-major order.

    With one model and one thread count this is `run_benchmark`.
    """
    counts = [t or (os.cpu_count() or 1) for t in (threads or [settings.threads])]
    variants = [Variant(Path(p), t) for p in paths for t in counts]
    inputs = _describe_inputs(settings, data, data_source)
    if len(variants) == 1:
        live = _open(variants[0].path, settings, variants[0].threads, data)
        _measure(live, settings)
        return [_result(live, settings, inputs, interleaved=False)]
    lives = [_open(v.path, settings, v.threads, data) for v in variants]
    while not all(lv.done(settings) for lv in lives):
        for lv in lives:
            if not lv.done(settings):
                _measure(lv, settings, budget=max(1, int(BLOCK_SECONDS / max(lv.warm_mean_s, 1e-7))))
    return [_result(lv, settings, inputs, interleaved=True) for lv in lives]


def baseline_ratios(results: Sequence[BenchResult]) -> list[dict[str, float | None] | None]:
    """Ratio of each result to its baseline: the first model at the same thread count
    (or, with a single model, its first thread count). None for the baseline itself."""
    if not results:
        return []
    first_model = results[0].model
    models = {r.model for r in results}
    out: list[dict[str, float | None] | None] = []
    for r in results:
        if len(models) > 1:
            base = next((b for b in results if b.model == first_model and b.threads == r.threads), None)
        else:
            base = results[0]
        out.append(None if base is None or base is r else ratios(r.latency, base.latency))
    return out
