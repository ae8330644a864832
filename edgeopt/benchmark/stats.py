"""Summary statistics of latency samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds, from `runs` timed invocations."""

    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    iqr: float
    runs: int

    @property
    def throughput(self) -> float:
        """Inferences per second at the mean latency."""
        return 1000.0 / self.mean if self.mean > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "throughput": self.throughput}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyStats:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def summarize(samples_ms: list[float] | np.ndarray) -> LatencyStats:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        msg = "no latency samples"
        raise ValueError(msg)
    q = np.percentile(a, [25, 50, 75, 90, 95, 99])
    return LatencyStats(
        p50=float(q[1]), p90=float(q[3]), p95=float(q[4]), p99=float(q[5]),
        mean=float(a.mean()), std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        min=float(a.min()), max=float(a.max()), iqr=float(q[2] - q[0]), runs=int(a.size),
    )


RATIO_KEYS = ("p50", "p90", "p99", "mean")


def ratios(candidate: LatencyStats, baseline: LatencyStats) -> dict[str, float | None]:
    """candidate / baseline for the usual latency statistics (None when the baseline is 0)."""
    out: dict[str, float | None] = {}
    for k in RATIO_KEYS:
        b = getattr(baseline, k)
        out[k] = getattr(candidate, k) / b if b > 0 else None
    return out
