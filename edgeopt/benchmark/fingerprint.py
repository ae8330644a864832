"""Where a number was measured: machine, OS, Python and runtime, attached to every result."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeopt.benchmark.emulation import detect


@dataclass(frozen=True)
class Fingerprint:
    host: str
    cpu: str
    cores: int
    arch: str
    os: str
    python: str
    runtime: str
    runtime_version: str
    implementation: str
    threads: int
    delegate: str
    graph_optimization: str | None = None  # onnxruntime only
    emulation: str | None = None  # why the CPU is emulated (edgeopt.benchmark.emulation); None: nothing says so

    @property
    def emulated(self) -> bool:
        return self.emulation is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprint:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in fields})

    def machine(self) -> tuple[str, str, int, str, bool]:
        """What must match for two results to be comparable as the same device."""
        return (self.cpu, self.arch, self.cores, self.os, self.emulated)

    def describe(self) -> str:
        opt = f", graph opt {self.graph_optimization}" if self.graph_optimization else ""
        return (f"{self.host}: {self.cpu}, {self.cores} cores, {self.arch}, {self.os}, Python {self.python}, "
                f"{self.implementation} {self.runtime_version}, {self.threads} thread(s), {self.delegate}{opt}"
                f"{'; EMULATED CPU (' + self.emulation + '): not the speed of a real device' if self.emulation else ''}")


def cpu_model() -> str:
    """A human CPU name: /proc/cpuinfo (x86 'model name', ARM 'Hardware'/'Model'), device tree, sysctl."""
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8", errors="replace") as fh:
            info: dict[str, str] = {}
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in info:
                    info[key.strip()] = value.strip()
        for key in ("model name", "Model", "Hardware", "cpu model", "Processor", "cpu"):
            if info.get(key):
                return info[key]
    except OSError:
        pass
    try:
        with Path("/proc/device-tree/model").open(encoding="utf-8", errors="replace") as fh:
            model = fh.read().strip("\x00\n ")
            if model:
                return model
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def collect(runtime: str, runtime_version: str, implementation: str, threads: int, delegate: str,
            graph_optimization: str | None = None) -> Fingerprint:
    return Fingerprint(
        host=platform.node() or "unknown", cpu=cpu_model(), cores=os.cpu_count() or 1, arch=platform.machine(),
        os=platform.platform(terse=True), python=platform.python_version(), runtime=runtime,
        runtime_version=runtime_version, implementation=implementation, threads=threads, delegate=delegate,
        graph_optimization=graph_optimization, emulation=detect(),
    )
