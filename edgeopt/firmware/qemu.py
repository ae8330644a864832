"""Run a firmware image on the QEMU machine for its core: semihosting, -icount shift=0, a timeout.

The run folder is QEMU's working directory: the firmware reads `in.bin` and writes `out.bin`
there through semihosting. stdout carries the firmware's printf (the EDGEOPT protocol lines).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import InputError
from edgeopt.firmware.cores import QemuMachine

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class QemuRun:
    stdout: str
    returncode: int
    seconds: float  # wall time of the emulation on this host
    command: tuple[str, ...]


def qemu_command(qemu: Path, machine: QemuMachine, elf: Path) -> tuple[str, ...]:
    return (str(qemu), "-M", machine.machine, "-cpu", machine.cpu, "-nographic", "-monitor", "none", "-serial", "null",
            "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf))


def run_qemu(qemu: Path, machine: QemuMachine, elf: Path, cwd: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> QemuRun:
    cmd = qemu_command(qemu, machine, elf)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        last = next((ln for ln in reversed(out.splitlines()) if ln.startswith("EDGEOPT ")), "no output")
        msg = (
            f"the firmware did not finish on {machine.machine} within the {timeout_s:g} s limit (hang?); "
                         f"last report: {last}; raise it with --timeout"
        )
        raise InputError(msg) from None
    return QemuRun(proc.stdout + proc.stderr, proc.returncode, time.perf_counter() - t0, cmd)
