"""Flash and RAM of a linked image, from `arm-none-eabi-size -A` and the linker map.

Totals come from the ELF's sections: flash = every allocated section below the RAM base plus
the load image of .data; RAM = .data + .bss + the heap and stack reservations. The split comes
from the map file's input sections, attributed by the object that contributed them:
model (g_model.o: the flatbuffer), arena (the harness's tensor_arena), TFLM/kernels
(libtflm.a: interpreter, kernels, CMSIS-NN), libc (newlib, libgcc, libm, rdimon), stack/heap
(reservations), and the rest (harness, startup, vector table, padding).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeopt.firmware.toolchain import Toolchain

RAM_BASE = 0x20000000
FLASH_SECTIONS = (".text", ".ARM.extab", ".ARM.exidx", ".copy.table", ".zero.table")
RAM_SECTIONS = (".data", ".bss", ".heap", ".stack")


@dataclass(frozen=True)
class ElfFigures:
    text: int  # code (input sections .text*)
    rodata: int  # constants (.rodata*, vector table, init lists), the model flatbuffer among them
    data: int  # initialised data (in flash and copied to RAM)
    bss: int  # zeroed RAM, the tensor arena among it
    heap: int  # heap reservation (newlib stdio of the harness)
    stack: int  # stack reservation
    flash_bytes: int
    ram_bytes: int
    flash_split: tuple[tuple[str, int], ...]  # (part, bytes): model, tflm, libc, rest
    ram_split: tuple[tuple[str, int], ...]  # arena, tflm, libc, stack, heap, rest

    def describe(self) -> str:
        f = ", ".join(f"{k} {v / 1024:.1f}" for k, v in self.flash_split)
        r = ", ".join(f"{k} {v / 1024:.1f}" for k, v in self.ram_split)
        return f"ELF flash {self.flash_bytes / 1024:.1f} KB ({f}); RAM {self.ram_bytes / 1024:.1f} KB ({r})"

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "rodata": self.rodata, "data": self.data, "bss": self.bss, "heap": self.heap,
                "stack": self.stack, "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
                "flash_split": dict(self.flash_split), "ram_split": dict(self.ram_split)}


def _sections(tc: Toolchain, elf: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run([str(tc.size), "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            found[parts[0]] = (int(parts[1]), int(parts[2]))
    return found


_ENTRY = re.compile(r"^ (\.[^\s]+|\*fill\*|COMMON)?\s*(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)(?:\s+(.+))?$")


def _owner(path: str) -> str:
    if "libtflm.a" in path:
        return "tflm"
    if path.endswith("g_model.o"):
        return "model"
    if re.search(r"lib(c|c_nano|g|g_nano|m|gcc|rdimon|rdimon_nano|stdc\+\+|stdc\+\+_nano|nosys)\.a|crt[a-z0-9]*\.o", path):
        return "libc"
    return "rest"


def _map_parts(mapfile: Path) -> list[tuple[str, str, int, str]]:
    """(output section, input section, size, owner) for every input section in the map."""
    lines = mapfile.read_text(errors="replace").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Linker script and memory map"))
    except StopIteration:
        return []
    parts, out_sec, pending = [], "", ""
    for ln in lines[start + 1:]:
        if ln.startswith("."):
            out_sec = ln.split()[0]
            continue
        if ln.startswith("/DISCARD/") or ln.startswith("OUTPUT("):
            out_sec = ""
            continue
        m = _ENTRY.match(ln)
        if m:
            name = m.group(1) or pending
            pending = ""
            size = int(m.group(3), 16)
            if out_sec and name and size and not (m.group(4) or "").startswith(("ALIGN", "0x")):
                owner = "rest" if name == "*fill*" else _owner((m.group(4) or "").strip())
                parts.append((out_sec, name, size, owner))
            continue
        s = ln.strip()
        pending = s if ln.startswith(" .") and len(s.split()) == 1 else ""
    return parts


def read_elf(tc: Toolchain, elf: Path, mapfile: Path) -> ElfFigures:
    secs = _sections(tc, elf)
    size = {k: v[0] for k, v in secs.items()}
    flash = sum(n for k, (n, addr) in secs.items() if k in FLASH_SECTIONS or (addr < RAM_BASE and k not in RAM_SECTIONS
                                                                              and not k.startswith((".debug", ".comment", ".ARM.attributes"))))
    flash += size.get(".data", 0)
    ram = sum(size.get(k, 0) for k in RAM_SECTIONS)

    parts = _map_parts(mapfile)
    text = sum(n for o, s, n, _ in parts if o == ".text" and s.startswith(".text"))
    # .rodata is the rest of the .text output section: the map lists mergeable string sections before merging.
    rodata = max(0, size.get(".text", 0) - text)
    arena = sum(n for o, s, n, _ in parts if o == ".bss" and "tensor_arena" in s)

    def split(sections: tuple[str, ...], total: int, fixed: dict[str, int]) -> tuple[tuple[str, int], ...]:
        by: dict[str, int] = dict(fixed)
        for o, s, n, owner in parts:
            if o in sections and not (o == ".bss" and "tensor_arena" in s):
                key = owner if owner != "model" or o != ".bss" else "rest"
                by[key] = by.get(key, 0) + n
        known = sum(v for k, v in by.items() if k != "rest")
        by["rest"] = max(0, total - known)
        order = ("model", "arena", "tflm", "libc", "stack", "heap", "rest")
        return tuple((k, by[k]) for k in order if k in by)

    flash_split = split((*FLASH_SECTIONS, ".data"), flash, {})
    ram_split = split((".data", ".bss"), ram, {"arena": arena, "stack": size.get(".stack", 0), "heap": size.get(".heap", 0)})
    return ElfFigures(text=text, rodata=rodata, data=size.get(".data", 0), bss=size.get(".bss", 0),
                      heap=size.get(".heap", 0), stack=size.get(".stack", 0), flash_bytes=flash, ram_bytes=ram,
                      flash_split=flash_split, ram_split=ram_split)
