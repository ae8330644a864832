"""Run a firmware image on the QEMU machine for its core: semihosting, -icount shift=0, a timeout, confined.

The run folder is QEMU's working directory: the firmware reads `in.bin` and writes `out.bin`
there through semihosting. stdout carries the firmware's printf (the EDGEOPT protocol lines).

Semihosting with `target=native` hands the guest the host's file system (SYS_OPEN of any path,
SYS_REMOVE, SYS_RENAME) and a shell (SYS_SYSTEM), and a model that corrupts the firmware's memory
can make it issue any of them. So QEMU runs confined (unless EDGEOPT_SANDBOX=off):
- its own seccomp filter (`-sandbox`): starting a program (SYS_SYSTEM's fork/exec), raising
  privileges, obsolete and resource-control system calls kill it with SIGSYS;
- Landlock (edgeopt.confine): the run folder is the only place it may write, create or remove, and
  it may read and execute only its binary, the shared libraries its loader lists, /etc/ld.so.cache and the
  image; TCP is refused (Landlock ABI >= 4) and signals to other processes too (ABI >= 6);
- no network device backend (`-net none`): the board's Ethernet has no host side.
"""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edgeopt import confine
from edgeopt.errors import InputError, ModelFileError, RuntimeUnavailableError
from edgeopt.firmware.cores import QemuMachine

DEFAULT_TIMEOUT_S = 600.0
SECCOMP = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
LIST_TIMEOUT_S = 30.0
_PT_INTERP = 3
_NO_PEER = re.compile(r"^\S+: warning: nic \S+ has no peer\n", re.M)  # what -net none costs: the board's NIC is unplugged
# What the dynamic loader reads besides the libraries (measured: nothing else is needed to run the harness).
LOADER_FILES = (Path("/etc/ld.so.cache"),)
# When the loader cannot list the libraries: the folders a dynamic loader searches (system libraries, no user data).
LIBRARY_DIRS = (Path("/lib"), Path("/lib64"), Path("/usr/lib"), Path("/usr/lib64"), Path("/usr/local/lib"))


@dataclass(frozen=True)
class QemuRun:
    stdout: str
    returncode: int
    seconds: float  # wall time of the emulation on this host
    command: tuple[str, ...]
    confined: bool  # seccomp + Landlock (False only with EDGEOPT_SANDBOX=off)


def qemu_command(qemu: Path, machine: QemuMachine, elf: Path, *, sandbox: bool = True) -> tuple[str, ...]:
    seccomp = ("-sandbox", SECCOMP) if sandbox else ()
    return (str(qemu), "-M", machine.machine, "-cpu", machine.cpu, "-nographic", "-monitor", "none", "-serial", "null",
            "-net", "none", *seccomp, "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
            "-kernel", str(elf))


def require_confinement() -> None:
    """Before any work: SandboxUnavailable (exit 2) when the kernel cannot confine QEMU and the user did not opt out."""
    if confine.enabled():
        confine.require()


def _interpreter(binary: Path) -> Path | None:
    """The ELF's PT_INTERP (its dynamic loader); None for a static binary. ValueError when it is not an ELF."""
    with binary.open("rb") as fh:
        head = fh.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            msg = f"{binary} is not an ELF executable"
            raise ValueError(msg)
        is64 = head[4] == 2
        end = "<" if head[5] == 1 else ">"
        word = "Q" if is64 else "I"
        phoff = struct.unpack_from(f"{end}{word}", head, 32 if is64 else 28)[0]
        phentsize, phnum = struct.unpack_from(f"{end}HH", head, 54 if is64 else 42)
        # p_type, then p_offset and p_filesz: (offset 8, 32) in Elf64_Phdr, (4, 16) in Elf32_Phdr
        at_offset, at_size = (8, 32) if is64 else (4, 16)
        for i in range(min(phnum, 256)):
            fh.seek(phoff + i * phentsize)
            ph = fh.read(phentsize)
            if struct.unpack_from(f"{end}I", ph, 0)[0] == _PT_INTERP:
                offset = struct.unpack_from(f"{end}{word}", ph, at_offset)[0]
                size = struct.unpack_from(f"{end}{word}", ph, at_size)[0]
                fh.seek(offset)
                return Path(fh.read(min(size, 4096)).split(b"\0")[0].decode())
    return None


@lru_cache(maxsize=8)
def _shared_libraries(qemu: Path, stamp: tuple[int, int]) -> tuple[Path, ...]:
    """The files the loader maps for `qemu` (the loader included), listed by its own loader (`ld.so --list`, what
    `ldd` runs, without the shell); the system library folders when that does not work."""
    try:
        loader = _interpreter(qemu)
        if loader is None:
            return ()  # static: nothing to load
        proc = subprocess.run([str(loader), "--list", str(qemu)], capture_output=True, text=True,
                              timeout=LIST_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except (OSError, ValueError, struct.error, subprocess.TimeoutExpired):
        return LIBRARY_DIRS
    found = [Path(p) for p in re.findall(r"(?:=>\s*|^\s*)(/\S+)\s+\(0x", proc.stdout, flags=re.M)]
    if proc.returncode != 0 or not found or "not found" in proc.stdout:
        return LIBRARY_DIRS
    return tuple(dict.fromkeys([loader, *found]))


def confinement(qemu: Path, elf: Path, run_dir: Path) -> confine.Confinement:
    """QEMU may write only in `run_dir` and read only what it needs to start and the image."""
    binary = Path(qemu).resolve()
    st = binary.stat()
    readable = (binary, *_shared_libraries(binary, (st.st_ino, st.st_mtime_ns)), *LOADER_FILES, Path(elf))
    return confine.Confinement(writable=(Path(run_dir),), readable=readable)


def run_qemu(qemu: Path, machine: QemuMachine, elf: Path, cwd: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> QemuRun:
    confined = confine.enabled()
    if confined:
        confine.require()
    cmd = qemu_command(qemu, machine, elf, sandbox=confined)
    preexec = confine.preexec(confinement(qemu, elf, cwd)) if confined else None
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout_s,
                              check=False, stdin=subprocess.DEVNULL, preexec_fn=preexec)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        last = next((ln for ln in reversed(out.splitlines()) if ln.startswith("EDGEOPT ")), "no output")
        msg = (
            f"the firmware did not finish on {machine.machine} within the {timeout_s:g} s limit (hang?); "
                         f"last report: {last}; raise it with --timeout"
        )
        raise InputError(msg) from None
    seconds = time.perf_counter() - t0
    output = proc.stdout + _NO_PEER.sub("", proc.stderr)
    if confined and proc.returncode == -signal.SIGSYS:
        last = next((ln for ln in reversed(output.splitlines()) if ln.startswith("EDGEOPT ")), "none")
        msg = (f"the firmware on {machine.machine} asked the host for a forbidden operation (semihosting SYS_SYSTEM "
               f"or another system call QEMU's sandbox refuses) and QEMU was stopped (SIGSYS); edgeopt's harness never "
               f"does this, so the model drove the firmware out of bounds: do not trust this model file "
               f"(last report: {last})")
        raise ModelFileError(msg)
    if confined and proc.returncode == 1 and "-sandbox" in proc.stderr and "EDGEOPT " not in output:
        msg = (f"{qemu} cannot run its seccomp sandbox ({proc.stderr.strip().splitlines()[-1][:200]}); install a QEMU "
               f"built with seccomp (Debian's and Ubuntu's qemu-system-arm are) or set {confine.SANDBOX_ENV}=off to run "
               "it unconfined, only for models you trust")
        raise RuntimeUnavailableError(msg)
    return QemuRun(output, proc.returncode, seconds, cmd, confined)
