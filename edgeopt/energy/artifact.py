"""The energy figure of a built artifact: RAPL over a window of invokes when readable, else the estimate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgeopt.energy.figure import EnergyFigure, LatencySource, estimate_energy, measured_energy
from edgeopt.energy.rapl import measure_rapl, rapl_status
from edgeopt.profiles.schema import Profile

WINDOW_S = 1.0  # idle baseline and measured window, each


def artifact_energy(path: Path, profile: Profile, p50_ms: float | None, remote: bool = False,
                    threads: int = 1, progress: Callable[[str], None] | None = None,
                    emulated: bool = False) -> EnergyFigure:
    """Energy per inference of `path` on this host (RAPL), or profile power x the measured p50.

    A remote benchmark's latency is the device's; a local one is this host's; one measured on an emulated CPU
    (`emulated`) is the emulator's (labelled each way). The counter is read only when the artifact ran locally
    on a real CPU: a host counter says nothing about a device.
    """
    status = rapl_status()
    if status.readable and not remote and not emulated:
        from edgeopt.benchmark.inputs import make_feeds
        from edgeopt.runtime import RunnerOptions
        from edgeopt.runtime.registry import open_runner

        if progress is not None:
            progress("measuring energy per inference (RAPL)")
        runner = open_runner(Path(path), RunnerOptions(threads=threads))
        runner.set_inputs(make_feeds(runner.inputs, 0))
        runner.invoke()
        return measured_energy(measure_rapl(runner.invoke, WINDOW_S, status), status.reason, profile.energy)
    note = "" if remote or emulated else status.reason
    source = None if p50_ms is None else (LatencySource.EMULATED if emulated else LatencySource.DEVICE_MEASURED
                                          if remote else LatencySource.HOST_MEASURED)
    return estimate_energy(profile.energy, p50_ms, source, counter_note=note)
