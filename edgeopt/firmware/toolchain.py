"""Find the Arm GNU toolchain and QEMU; a missing tool is bad input (exit 2) with the install line."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import RuntimeUnavailableError

APT = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"


@dataclass(frozen=True)
class Toolchain:
    gxx: Path
    gcc: Path
    ar: Path
    size: Path
    nm: Path
    version: str  # first line of `arm-none-eabi-g++ --version`, part of the library cache key
    # `-wrapper setpriv,--pdeathsig,KILL,--`: the driver's own children (cc1plus, as, collect2) die with the driver,
    # which dies with edgeopt (edgeopt.parent_death); () where util-linux's setpriv is missing
    wrapper: tuple[str, ...] = ()


def _which(name: str) -> Path:
    found = shutil.which(name)
    if not found:
        msg = (
            f"{name} not found on PATH: the firmware build needs the Arm GNU toolchain and QEMU; "
                                      f"install them with: sudo {APT}"
        )
        raise RuntimeUnavailableError(msg)
    return Path(found)


def find_toolchain() -> Toolchain:
    gxx = _which("arm-none-eabi-g++")
    tools = {n: _which(f"arm-none-eabi-{n}") for n in ("gcc", "ar", "size", "nm")}
    out = subprocess.run([str(gxx), "--version"], capture_output=True, text=True, check=False).stdout
    if not _has_newlib(gxx):
        msg = f"{gxx} has no newlib C library (rdimon semihosting specs missing); install it with: sudo {APT}"
        raise RuntimeUnavailableError(msg)
    setpriv = shutil.which("setpriv")
    wrapper = ("-wrapper", f"{setpriv},--pdeathsig,KILL,--") if setpriv else ()
    return Toolchain(gxx=gxx, version=(out.splitlines() or ["?"])[0], wrapper=wrapper, **tools)


def _has_newlib(gxx: Path) -> bool:
    out = subprocess.run([str(gxx), "-print-file-name=rdimon.specs"], capture_output=True, text=True, check=False).stdout.strip()
    return bool(out) and Path(out).is_file()


def find_qemu() -> Path:
    return _which("qemu-system-arm")
