"""Compile the harness, the model and the device startup for one core; link with the board's memory.

The linker's FLASH and RAM regions are the board's flash and RAM, so an image that does not fit
fails at link time. Then it is linked once more with 64 MB regions to learn how much it needs,
and the failure is a budget error (exit 3) with used and limit, not a linker dump.
Before every link the library cache checks the recorded hash of each object and of libtflm.a (a failing
one is rebuilt, never linked). Undefined symbols are handed to the library cache, which compiles the TFLM/CMSIS-NN sources
defining them, and the link is repeated. A model op the TFLM tree has no kernel for stays an
undefined Register_<OP>: exit 2.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import BudgetExceededError, BudgetViolation, InputError, UnsupportedOpError
from edgeopt.firmware.cores import CoreSpec
from edgeopt.firmware.elf import ElfFigures, read_elf
from edgeopt.firmware.harness import linker_script, main_cc
from edgeopt.firmware.library import CXX, C, LibraryCache
from edgeopt.firmware.toolchain import Toolchain
from edgeopt.firmware.tree import TflmTree
from edgeopt.parent_death import preexec

KB = 1024
UNLIMITED = 64 * 1024 * 1024
TOOL_TIMEOUT_S = 600.0  # one compile or link
MAX_ROUNDS = 12  # link, compile what is undefined, link again
LINK = ("-Wl,--gc-sections", "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles")


@dataclass(frozen=True)
class Image:
    elf: Path
    map: Path
    figures: ElfFigures
    flash_limit_bytes: int
    ram_limit_bytes: int


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """The compiler or linker, with a timeout; it dies with us (PR_SET_PDEATHSIG)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S,
                              preexec_fn=preexec())  # noqa: PLW1509 - one libc call, resolved beforehand
    except subprocess.TimeoutExpired:
        msg = f"{Path(cmd[0]).name} ran over {TOOL_TIMEOUT_S:.0f} s on {what}; is the model too large for a C array?"
        raise InputError(msg) from None


def _compile(tc: Toolchain, src: Path, obj: Path, flags: tuple[str, ...], includes: list[str]) -> None:
    cxx = src.suffix in (".cc", ".cpp")
    cmd = [str(tc.gxx if cxx else tc.gcc), *tc.wrapper, *flags, *(CXX if cxx else C), *includes, "-c", str(src), "-o", str(obj)]
    proc = _run(cmd, str(src))
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:400])
        msg = f"the firmware source {src.name} does not compile: {first}"
        raise InputError(msg)


def _link(tc: Toolchain, flags: tuple[str, ...], objs: list[Path], lib: LibraryCache, script: Path, elf: Path,
          mapfile: Path) -> subprocess.CompletedProcess[str]:
    for _ in range(MAX_ROUNDS):
        archive = lib.checked_archive()  # every object and the archive pass their hash first, or are rebuilt
        before = _stamp(archive)
        cmd = [str(tc.gxx), *tc.wrapper, *flags, *LINK, f"-T{script}", f"-Wl,-Map={mapfile}", *map(str, objs), str(archive), "-lm",
               "-o", str(elf)]
        proc = _run(cmd, "link")
        undefined = tuple(dict.fromkeys(re.findall(r"undefined reference to `([^']+)'", proc.stderr)))
        if proc.returncode == 0 or not undefined:
            return proc
        compiled, _ = lib.provide(undefined)
        if compiled == 0 and _stamp(lib.archive) == before:  # nothing new, not even from a concurrent build
            return proc
    return proc


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _missing_ops(stderr: str) -> tuple[str, ...]:
    names = re.findall(r"undefined reference to `(?:tflite::)?(?:tflm_signal::)?Register_([A-Za-z0-9_]+)\(", stderr)
    return tuple(sorted(set(names)))


def build_image(work: Path, spec: CoreSpec, tc: Toolchain, tree: TflmTree, lib: LibraryCache, *, flash_bytes: int,
                ram_bytes: int, profile: str) -> Image:
    """`work` holds g_model.h/.cc; writes main.cc, board.ld, objects and app.elf there.

    The memory regions are the board's, capped at the emulator's memory (the stack sits at the top of
    RAM, which must exist in QEMU); an image that fits the board but not the emulator is exit 2.
    """
    dev = tree.device_dir(spec.device)
    (work / "main.cc").write_text(main_cc(spec.device))
    includes = [*tree.includes(), f"-I{dev / 'Include'}", f"-I{work}"]
    flags = (*lib.flags, f"-D{spec.device}")
    sources = [work / "main.cc", work / "g_model.cc", dev / "Source" / f"startup_{spec.device}.c",
               dev / "Source" / f"system_{spec.device}.c"]
    objs = []
    for src in sources:
        obj = work / f"{src.stem}.o"
        _compile(tc, src, obj, flags, includes)
        objs.append(obj)

    script = work / "board.ld"
    machine = spec.qemu
    link_flash = min(flash_bytes, machine.code_bytes) if machine else flash_bytes
    link_ram = min(ram_bytes, machine.ram_bytes) if machine else ram_bytes
    script.write_text(linker_script(dev, spec.device, link_flash, link_ram))
    elf, mapfile = work / "app.elf", work / "app.map"
    proc = _link(tc, flags, objs, lib, script, elf, mapfile)
    if proc.returncode == 0:
        return Image(elf, mapfile, read_elf(tc, elf, mapfile), flash_bytes, ram_bytes)

    missing = _missing_ops(proc.stderr)
    if missing and "undefined reference" in proc.stderr:
        msg = (
            f"the TFLM tree {tree.root} has no kernel for {', '.join(missing)} that the model needs "
                                 "(undefined Register_ at link time); use a tree generated with those kernels"
        )
        raise UnsupportedOpError(msg, missing)
    if not re.search(r"overflowed|will not fit in region|region RAM overflowed", proc.stderr):
        first = next((ln for ln in proc.stderr.splitlines() if "undefined" in ln or "error" in ln), proc.stderr.strip()[:400])
        msg = f"the firmware does not link for {spec.core}: {first.strip()}"
        raise InputError(msg)
    # It does not fit: link again without limits to learn how much it needs.
    big = work / "unlimited"
    big.mkdir(exist_ok=True)
    script_big = big / "board.ld"
    script_big.write_text(linker_script(dev, spec.device, UNLIMITED, UNLIMITED))
    proc_big = _link(tc, flags, objs, lib, script_big, big / "app.elf", big / "app.map")
    if proc_big.returncode != 0:
        msg = f"the firmware does not link for {spec.core} even without memory limits: {proc_big.stderr.strip()[:300]}"
        raise InputError(msg)
    need = read_elf(tc, big / "app.elf", big / "app.map")
    violations = []
    if need.flash_bytes > flash_bytes:
        violations.append(BudgetViolation(f"firmware flash (ELF, board '{profile}')", round(flash_bytes / KB, 2),
                                          round(need.flash_bytes / KB, 2), "KB"))
    if need.ram_bytes > ram_bytes:
        violations.append(BudgetViolation(f"firmware RAM (ELF, board '{profile}')", round(ram_bytes / KB, 2),
                                          round(need.ram_bytes / KB, 2), "KB"))
    if not violations and (link_flash < flash_bytes or link_ram < ram_bytes) and machine is not None:
        msg = (
            f"the image fits board '{profile}' but not QEMU's {machine.machine} ({need.describe()}; the machine has "
                         f"{machine.code_bytes // KB} KB at 0x0 and {machine.ram_bytes // KB} KB at 0x20000000), so it cannot run here"
        )
        raise InputError(msg)
    if not violations:  # the regions were too small although the totals fit (fragmentation, alignment)
        violations.append(BudgetViolation(f"firmware RAM (ELF, board '{profile}')", round(ram_bytes / KB, 2),
                                          round(need.ram_bytes / KB, 2), "KB"))
    raise BudgetExceededError(tuple(violations), detail=need.describe())
