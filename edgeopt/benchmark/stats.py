"""Summary statistics of latency samples."""

from __future__ import annotations

from dataclasses import dataclass

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


def summarize(samples_ms: list[float] | np.ndarray) -> LatencyStats:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    q = np.percentile(a, [25, 50, 75, 90, 95, 99])
    return LatencyStats(
        p50=float(q[1]), p90=float(q[3]), p95=float(q[4]), p99=float(q[5]),
        mean=float(a.mean()), std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        min=float(a.min()), max=float(a.max()), iqr=float(q[2] - q[0]), runs=int(a.size),
    )
