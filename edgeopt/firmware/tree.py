"""The TFLite Micro source folder: `--tflm DIR` or $EDGEOPT_TFLM.

DIR holds `tree/` (a TFLM tree from TFLM's create_tflm_tree.py with CMSIS-NN kernels) and
`device/` (Arm's Cortex_DFP generic device support: startup, system file, linker script),
as ../shared/tflm does. The tree's content hash is part of the library cache key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import InputError

ENV = "EDGEOPT_TFLM"
MARKER = Path("tensorflow/lite/micro/micro_interpreter.h")
SOURCE_SUFFIXES = (".cc", ".c", ".cpp")
# Left out of the library: micro_time.cc needs a device header (the harness times with SysTick itself).
EXCLUDED = ("tensorflow/lite/micro/cortex_m_generic/micro_time.cc",)
INCLUDE_DIRS = (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                "third_party/kissfft", "third_party/cmsis/CMSIS/Core/Include", "third_party/cmsis_nn",
                "third_party/cmsis_nn/Include")


@dataclass(frozen=True)
class TflmTree:
    root: Path  # the --tflm folder
    tree: Path  # root/tree
    device: Path  # root/device
    sha256: str  # of every file path and content under tree/

    def sources(self) -> tuple[Path, ...]:
        out = []
        for p in sorted(self.tree.rglob("*")):
            rel = p.relative_to(self.tree).as_posix()
            if p.suffix in SOURCE_SUFFIXES and p.is_file() and rel not in EXCLUDED:
                out.append(p)
        return tuple(out)

    def includes(self) -> tuple[str, ...]:
        return tuple(f"-I{self.tree / d}" for d in INCLUDE_DIRS)

    def device_dir(self, device: str) -> Path:
        d = self.device / device
        if not (d / "Include" / f"{device}.h").is_file():
            msg = (
                f"--tflm {self.root}: no Cortex_DFP device support for {device} in {self.device}; "
                             "add ARM-software/Cortex_DFP's Device/ARM/{device} there"
            )
            raise InputError(msg)
        return d


def _hash(tree: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(tree).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def find_tree(given: Path | None) -> TflmTree:
    """The tree from `--tflm` or $EDGEOPT_TFLM; exit 2 naming what is missing."""
    if given is None:
        env = os.environ.get(ENV, "")
        if not env:
            msg = f"no TFLite Micro source tree: pass --tflm DIR or set ${ENV} (a folder with tree/ and device/, e.g. shared/tflm)"
            raise InputError(msg)
        given, how = Path(env), f"${ENV}={env}"
    else:
        how = f"--tflm {given}"
    root = Path(given).expanduser()
    if not root.is_dir():
        msg = f"{how}: not a folder; give the folder holding the TFLM tree/ and device/"
        raise InputError(msg)
    tree = root / "tree"
    if not (tree / MARKER).is_file():
        msg = (
            f"{how}: not a TFLite Micro tree (no tree/{MARKER}); generate one with TFLM's "
                         "create_tflm_tree.py (TARGET=cortex_m_generic OPTIMIZED_KERNEL_DIR=cmsis_nn) into DIR/tree"
        )
        raise InputError(msg)
    if not (tree / "third_party" / "cmsis_nn" / "Include" / "arm_nnfunctions.h").is_file():
        msg = f"{how}: the TFLM tree has no CMSIS-NN (tree/third_party/cmsis_nn); generate it with OPTIMIZED_KERNEL_DIR=cmsis_nn"
        raise InputError(msg)
    device = root / "device"
    if not device.is_dir():
        msg = f"{how}: no device/ folder (Arm Cortex_DFP generic device support) next to tree/"
        raise InputError(msg)
    return TflmTree(root=root.resolve(), tree=tree.resolve(), device=device.resolve(), sha256=_hash(tree))
