"""Is this host quiet enough for the numbers to mean something? Cores, load average, runtime threads.

A latency measured while other processes want the CPU (1-minute load average above the cores this process may
use), or with more runtime threads than cores, is biased; ratios too, even interleaved (a build read 0.14x where
the quiet ratio was 0.44x). The benchmark records both figures and says so, it does not refuse to measure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup quotas are not read)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class HostLoad:
    """The host while one model was measured."""

    cores: int  # usable by this process
    load_1m: float | None  # the higher 1-minute load average of before and after the timed runs
    threads: int  # the runtime's threads

    @property
    def overloaded(self) -> bool:
        return self.load_1m is not None and self.load_1m > self.cores

    @property
    def oversubscribed(self) -> bool:
        return self.threads > self.cores

    def warnings(self, threads_from: str = "--threads") -> tuple[str, ...]:
        """One sentence per reason the latency is biased; `threads_from` names where the thread count came from."""
        out = []
        if self.oversubscribed:
            out.append(f"{self.threads} runtime threads on {self.cores} core(s) ({threads_from}): the threads "
                       f"compete for the cores, so latency is worse than with {self.cores}; set the threads to "
                       f"{self.cores} or fewer for a figure this host can give")
        if self.overloaded:
            assert self.load_1m is not None
            out.append(f"the 1-minute load average was {self.load_1m:.2f} on {self.cores} core(s) while measuring: "
                       "other work competed for the CPU, so latencies (and ratios between models) are biased; "
                       "measure again on a quiet host")
        return tuple(out)


def merge(a: float | None, b: float | None) -> float | None:
    """The higher of two load readings (None when neither was read)."""
    vals = [v for v in (a, b) if v is not None]
    return max(vals) if vals else None
