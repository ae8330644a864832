"""Is this CPU emulated? A user-mode emulator (qemu-user, e.g. an arm64 root on an x86 host through binfmt_misc)
runs the code at a fraction of a real device's speed, so every figure measured under it is labelled.

`emulation(machine, cpuinfo, binfmt)` decides from texts (tested on real and qemu-user /proc/cpuinfo);
`detect()` reads them on this machine, once per process. Signs, any one enough:

- /proc/cpuinfo names a CPU of another family than the process's architecture: qemu-user before 8.1 passes the
  host's file through, so an `aarch64` process reads `vendor_id : AuthenticAMD` (gnulib's qemu.h uses the same);
- an ARM process whose /proc/cpuinfo has no `CPU implementer` line (every ARM Linux kernel prints one per core);
- QEMU's own /proc/cpuinfo (qemu-user 8.1+ writes one for ARM): `Hardware : QEMU ...`, or on aarch64 a
  `model name : ARMv8 Processor rev N (v8l)` line, which a real arm64 kernel prints only to 32-bit tasks;
- an enabled binfmt_misc entry `qemu-<arch>` for this very architecture (then the kernel hands every binary of
  it to the emulator);
- the kernel accepted an madvise advice Linux refuses (EINVAL): qemu-user ignores madvise hints and returns 0
  (the check Cosmopolitan's IsQemuUser uses).
"""

from __future__ import annotations

import mmap
import platform
import re
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")
_X86_VENDORS = frozenset({"GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "Shanghai"})
_QEMU_V8L = re.compile(r"^model name\s*:\s*ARMv\d+ Processor rev \d+ \(v8l\)\s*$", re.MULTILINE)
_BAD_ADVICE = 127  # no MADV_* has this value; Linux answers EINVAL


def family(machine: str) -> str | None:
    """The CPU family of an architecture name (platform.machine()): x86, arm, riscv, power, s390; None unknown."""
    m = machine.lower()
    if m in ("x86_64", "amd64", "x86") or re.fullmatch(r"i[3-6]86", m):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    if m.startswith("riscv"):
        return "riscv"
    if m.startswith(("ppc", "powerpc")):
        return "power"
    if m.startswith("s390"):
        return "s390"
    return None


def _fields(cpuinfo: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def cpuinfo_family(cpuinfo: str) -> str | None:
    """The CPU family /proc/cpuinfo describes; None when it does not say."""
    f = _fields(cpuinfo)
    vendor = f.get("vendor_id", "")
    if vendor in _X86_VENDORS:
        return "x86"
    if "CPU implementer" in f:
        return "arm"
    if f.get("isa", "").startswith("rv"):
        return "riscv"
    if "IBM/S390" in vendor:
        return "s390"
    if f.get("cpu", "").upper().startswith("POWER"):
        return "power"
    return None


def _cpu_name(cpuinfo: str) -> str:
    f = _fields(cpuinfo)
    return next((f[k] for k in ("model name", "Model", "Hardware", "vendor_id") if f.get(k)), "unknown CPU")


def _qemu_arch(machine: str) -> str:
    """qemu-user's name for an architecture (the suffix of its binfmt entry: qemu-aarch64, qemu-arm, ...)."""
    m = machine.lower()
    if m in ("arm64", "aarch64"):
        return "aarch64"
    if m.startswith("arm"):
        return "arm"
    if m in ("amd64", "x86_64"):
        return "x86_64"
    if re.fullmatch(r"i[3-6]86", m):
        return "i386"
    return m


def binfmt_entry(machine: str, binfmt: Mapping[str, str]) -> str | None:
    """The enabled qemu binfmt_misc entry (name -> file text) that runs `machine` binaries, as 'NAME -> INTERPRETER'."""
    arch = _qemu_arch(machine)
    for name, text in sorted(binfmt.items()):
        lines = text.splitlines()
        if not lines or lines[0].strip() != "enabled":
            continue
        interpreter = next((ln.split(None, 1)[1].strip() for ln in lines if ln.startswith("interpreter ")), "")
        base = Path(interpreter).name
        if name == f"qemu-{arch}" or base in (f"qemu-{arch}", f"qemu-{arch}-static", f"{arch}-binfmt-P"):
            return f"{name} -> {interpreter or '?'}"
    return None


def emulation(machine: str, cpuinfo: str, binfmt: Mapping[str, str] | None = None,
              madvise_ignored: bool = False) -> str | None:
    """Why this process runs on an emulated CPU (one phrase), or None when nothing says so."""
    own = family(machine)
    seen = cpuinfo_family(cpuinfo) if cpuinfo.strip() else None
    if own is not None and seen is not None and own != seen:
        return f"qemu-user: {machine} code on {_cpu_name(cpuinfo)}, a CPU of the {seen} family"
    if own == "arm" and cpuinfo.strip():
        hardware = _fields(cpuinfo).get("Hardware", "")
        if hardware.startswith("QEMU"):
            return f"qemu-user: /proc/cpuinfo is QEMU's own (Hardware: {hardware})"
        if machine.lower() in ("aarch64", "arm64") and _QEMU_V8L.search(cpuinfo):
            return "qemu-user: /proc/cpuinfo is QEMU's own (a 32-bit 'ARMv8 Processor (v8l)' line for aarch64 code)"
        if seen is None:
            return f"qemu-user: {machine} code, but /proc/cpuinfo has no ARM 'CPU implementer' line"
    entry = binfmt_entry(machine, binfmt or {})
    if entry is not None:
        return f"qemu-user: binfmt_misc hands {machine} binaries to an emulator ({entry})"
    if madvise_ignored:
        return f"a user-mode emulator (qemu-user): the kernel accepted madvise advice {_BAD_ADVICE}, which Linux refuses"
    return None


def _read(path: Path, limit: int = 1 << 20) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _binfmt() -> dict[str, str]:
    try:
        names = [p for p in BINFMT.iterdir() if p.name.startswith("qemu-")]
    except OSError:
        return {}
    return {p.name: _read(p, 4096) for p in names}


def _madvise_ignored() -> bool:
    """True when an invalid madvise advice succeeds (qemu-user); False on a real Linux kernel or elsewhere."""
    if not sys.platform.startswith("linux") or not hasattr(mmap.mmap, "madvise"):
        return False
    page = mmap.mmap(-1, mmap.PAGESIZE)
    try:
        page.madvise(_BAD_ADVICE)
    except OSError:
        return False
    finally:
        page.close()
    return True


@cache
def detect() -> str | None:
    """This process's emulation, if any (Linux; None elsewhere or when nothing says so)."""
    if not sys.platform.startswith("linux"):
        return None
    return emulation(platform.machine(), _read(Path("/proc/cpuinfo")), _binfmt(), _madvise_ignored())
