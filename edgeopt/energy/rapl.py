"""Linux powercap / RAPL energy counters: joules per inference, idle baseline subtracted.

The package domains are /sys/class/powercap/intel-rapl:N/energy_uj (AMD exposes the same
interface). Since Linux 5.10 (CVE-2020-8694) energy_uj is readable by root only; inside most
containers the powercap tree is absent. `rapl_status()` says which, in one line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # top-level domains only (sub-domains are inside them)


@dataclass(frozen=True)
class RaplStatus:
    readable: bool
    reason: str  # why not, or which domains are read
    domains: tuple[Path, ...] = ()


def rapl_status(root: Path = POWERCAP) -> RaplStatus:
    if not root.is_dir():
        return RaplStatus(False, f"no energy counter: {root} does not exist (no powercap driver, or a container without it)")
    domains = tuple(sorted(p for p in root.iterdir() if _PACKAGE.match(p.name) and (p / "energy_uj").exists()))
    if not domains:
        return RaplStatus(False, f"no energy counter: {root} has no intel-rapl:N/energy_uj (no RAPL on this CPU or driver)")
    try:
        for d in domains:
            int((d / "energy_uj").read_text().strip())
    except PermissionError:
        return RaplStatus(False, f"no energy counter: {domains[0] / 'energy_uj'} is not readable (root only since "
                                 "Linux 5.10, CVE-2020-8694); run as root or grant read access")
    except (OSError, ValueError) as exc:
        return RaplStatus(False, f"no energy counter: {domains[0] / 'energy_uj'} cannot be read ({exc})")
    return RaplStatus(True, "RAPL package energy: " + ", ".join(d.name for d in domains), domains)


def _read(domains: tuple[Path, ...]) -> list[int]:
    return [int((d / "energy_uj").read_text().strip()) for d in domains]


def _delta_uj(before: list[int], after: list[int], domains: tuple[Path, ...]) -> int:
    """Energy between two reads, across counter wrap-around (max_energy_range_uj)."""
    total = 0
    for b, a, d in zip(before, after, domains, strict=True):
        if a < b:
            rng = d / "max_energy_range_uj"
            a += int(rng.read_text().strip()) if rng.exists() else 2**32
        total += a - b
    return total


@dataclass(frozen=True)
class RaplMeasurement:
    joules_per_inference: float  # net of the idle baseline
    inferences: int
    window_s: float
    active_power_mw: float  # package power while invoking
    idle_power_mw: float  # package power over the same window, idle

    @property
    def net_power_mw(self) -> float:
        return self.active_power_mw - self.idle_power_mw


def measure_rapl(invoke: Callable[[], None], seconds: float = 1.0, status: RaplStatus | None = None) -> RaplMeasurement:
    """Idle for `seconds` (baseline), then invoke in a loop for `seconds`; needs a readable status."""
    st = status or rapl_status()
    if not st.readable:
        raise OSError(st.reason)
    e0, t0 = _read(st.domains), time.perf_counter()
    time.sleep(seconds)
    e1, t1 = _read(st.domains), time.perf_counter()
    idle_mw = _delta_uj(e0, e1, st.domains) / 1000.0 / (t1 - t0)
    n = 0
    e2, t2 = _read(st.domains), time.perf_counter()
    while time.perf_counter() - t2 < seconds or n == 0:
        invoke()
        n += 1
    e3, t3 = _read(st.domains), time.perf_counter()
    window = t3 - t2
    active_mw = _delta_uj(e2, e3, st.domains) / 1000.0 / window
    net_j = max(0.0, (active_mw - idle_mw) * window / 1000.0)
    return RaplMeasurement(net_j / n, n, window, active_mw, idle_mw)
