"""`edgeopt mcu run`: build the real firmware image for a board, run it under QEMU, compare with the host.

Order: core and emulator (exit 2 before any work when QEMU cannot run the core), toolchain,
QEMU and its confinement (exit 2 without Landlock unless EDGEOPT_SANDBOX=off), TFLM tree, the library
cache's folders (private, else exit 2), host checks and host arena (edgeopt.mcu.check), the cached TFLM
library (hashes checked), the image (link-time fit: exit 3), the confined QEMU run, then host TFLM and
LiteRT on the same samples.

The model's I/O types are taken as they are (the rule `mcu check` applies): integer I/O of another type than the
profile's is reported in `io_findings` and the firmware feeds and reads the model's own types. A stateful model
(resource variables) runs its samples as consecutive frames on one interpreter, state carried, 20 by default;
every frame is compared with host TFLM and LiteRT, which carry the state the same way.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.errors import FirmwareMismatchError
from edgeopt.firmware.cores import core_spec, emulator
from edgeopt.firmware.elf import ElfFigures
from edgeopt.firmware.image import build_image
from edgeopt.firmware.library import Library, LibraryCache
from edgeopt.firmware.qemu import DEFAULT_TIMEOUT_S, require_confinement, run_qemu
from edgeopt.firmware.results import Agreement, DeviceReport, agree, parse_report, read_outputs, write_inputs
from edgeopt.firmware.toolchain import find_qemu, find_toolchain
from edgeopt.firmware.tree import find_tree
from edgeopt.mcu.io_layout import IoLayout
from edgeopt.mcu.variables import STATEFUL_FRAMES, resource_variables
from edgeopt.profiles.schema import Profile

KB = 1024
DEFAULT_SAMPLES = 8


@dataclass(frozen=True)
class LatencyEstimate:
    """instructions x cpi / clock: an estimate (QEMU counts instructions, not cycles)."""

    min_ms: float
    median_ms: float
    max_ms: float
    cpi: float
    clock_mhz: float
    cpi_source: str
    clock_source: str


@dataclass(frozen=True)
class FirmwareResult:
    model: str
    profile: str
    core: str
    machine: str
    library: Library
    elf: ElfFigures
    flash_limit_bytes: int
    ram_limit_bytes: int
    device: DeviceReport
    host_arena_bytes: int  # the host (64-bit) TFLM minimum, edgeopt.mcu.arena
    samples: int
    sample_source: str
    vs_host_tflm: Agreement
    vs_litert: Agreement
    latency: LatencyEstimate | None
    build_seconds: float  # harness + model compile and link (TFLM library compiles excluded)
    qemu_seconds: float  # wall time of the emulation
    io: IoLayout  # how to feed and read it: shapes, types, quantization, dimension order (g_model.h says the same)
    io_types: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # (inputs, outputs): the model's own dtypes
    io_findings: tuple[str, ...] = ()  # I/O types that differ from the profile's (the firmware uses the model's)
    resource_variables: int = 0  # > 0: a stateful model, its samples ran as consecutive frames

    @property
    def stateful(self) -> bool:
        return self.resource_variables > 0

    def instructions(self) -> tuple[int, int, int]:
        """Per inference (min, median, max); for a stateful model per frame after the first (which runs CALL_ONCE's
        initialisation too: `first_frame_instructions`)."""
        if self.stateful and len(self.device.ticks) > 1:
            return self.device.instruction_stats(skip=1)
        return self.device.instruction_stats()

    @property
    def first_frame_instructions(self) -> int | None:
        return self.device.instructions[0] if self.stateful else None

    def to_dict(self) -> dict[str, object]:
        lo, med, hi = self.instructions()
        d = self.device
        return {
            "model": self.model, "profile": self.profile, "core": self.core, "qemu_machine": self.machine,
            "tflm_library": {"path": str(self.library.path), "cached": self.library.cached,
                             "compile_seconds": round(self.library.seconds, 2), "objects": self.library.objects,
                             "compiled_now": self.library.compiled, "notes": list(self.library.notes)},
            "elf": self.elf.to_dict(), "flash_limit_bytes": self.flash_limit_bytes, "ram_limit_bytes": self.ram_limit_bytes,
            "arena": {"target_bytes": d.arena_bytes, "target_minus_one_fails": d.arena_below_fails,
                      "host_bytes": self.host_arena_bytes, "tflm_arena_used_bytes": d.arena_used_bytes,
                      "reserved_bytes": d.arena_reserved_bytes, "trials": d.arena_trials},
            "stack": {"used_bytes": d.stack_used_bytes, "reserved_bytes": d.stack_reserved_bytes},
            "instructions_per_inference": {"min": lo, "median": med, "max": hi, "per_sample": list(d.instructions),
                                           "first_frame": self.first_frame_instructions,
                                           "over": ("frames 2..N (frame 1 also runs CALL_ONCE's initialisation)"
                                                    if self.stateful and self.samples > 1 else "every sample"),
                                           "systick_instructions_per_tick": d.instructions_per_tick,
                                           "calibrated_instructions_per_tick": round(d.calibrated_instructions_per_tick, 4)},
            "io_types": {"inputs": list(self.io_types[0]), "outputs": list(self.io_types[1])},
            "io_findings": list(self.io_findings),
            "stateful": {"resource_variables": self.resource_variables, "consecutive_frames": self.samples,
                         "variable_table_bytes": d.variable_table_bytes} if self.stateful else None,
            "samples": self.samples, "sample_source": self.sample_source,
            "vs_host_tflm": _agreement(self.vs_host_tflm), "vs_litert": _agreement(self.vs_litert),
            "device_latency_estimate_ms": None if self.latency is None else {
                "min": round(self.latency.min_ms, 4), "median": round(self.latency.median_ms, 4),
                "max": round(self.latency.max_ms, 4), "label": "estimate: instructions x cpi / clock",
                "cpi": self.latency.cpi, "cpi_source": self.latency.cpi_source,
                "clock_mhz": self.latency.clock_mhz, "clock_source": self.latency.clock_source},
            "build_seconds": round(self.build_seconds, 2), "qemu_seconds": round(self.qemu_seconds, 2),
            "io": self.io.to_dict(),
        }

    def enforce(self) -> None:
        """The device must match host TFLM bit for bit (same int8 arithmetic; CMSIS-NN is bit-exact by design)."""
        if not self.vs_host_tflm.bit_exact:
            msg = (
                f"{self.model} on {self.core} ({self.machine}): the firmware output "
                                        f"{self.vs_host_tflm.describe()}"
            )
            raise FirmwareMismatchError(msg)


def _agreement(a: Agreement) -> dict[str, object]:
    first = None if a.first is None else {"sample": a.first.sample, "output": a.first.output,
                                           "element": list(a.first.element), "device": a.first.device,
                                           "reference": a.first.reference}
    return {"reference": a.reference, "bit_exact": a.bit_exact, "mismatched_elements": a.mismatched_elements,
            "max_abs_diff": a.max_abs_diff, "first_difference": first}


def _limits(profile: Profile, code_bytes: int, ram_bytes: int) -> tuple[int, int]:
    """Linker regions: the tighter of the board and the budgets; the emulator's memory when neither says."""
    m, b = profile.mcu, profile.budgets
    flash = [int(k * KB) for k in (m.flash_kb, b.max_flash_kb) if k is not None]
    ram = [int(k * KB) for k in (m.ram_kb, b.max_ram_kb) if k is not None]
    return (min(flash) if flash else code_bytes), (min(ram) if ram else ram_bytes)


def _latency(profile: Profile, instructions: tuple[int, int, int]) -> LatencyEstimate | None:
    fw = profile.firmware
    if fw.cpi is None or fw.clock_mhz is None:
        return None
    ms = tuple(n * fw.cpi / (fw.clock_mhz * 1e6) * 1000.0 for n in instructions)
    return LatencyEstimate(ms[0], ms[1], ms[2], fw.cpi, fw.clock_mhz, fw.cpi_source, fw.clock_source)


KEPT = ("app.elf", "app.map", "main.cc", "board.ld", "g_model.h", "g_model.cc")


def _keep(work: Path, out: Path) -> None:
    """Copy the image and its sources to `out`: each file to a temporary name there, then os.replace."""
    import contextlib
    import os
    import shutil

    from edgeopt.atomic import DISK_FULL, new_file_mode, no_space
    from edgeopt.errors import OutputError

    tmp: str | None = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
            os.close(fd)
            shutil.copyfile(work / name, tmp)
            Path(tmp).chmod(new_file_mode())  # mkstemp made it 0600: kept files are the user's, readable as usual
            Path(tmp).replace(out / name)
            tmp = None
    except OSError as exc:
        if tmp is not None:  # no half-written copy left behind
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
        if exc.errno in DISK_FULL:
            raise no_space(out, sum((work / name).stat().st_size for name in KEPT)) from None
        msg = f"cannot write the firmware into {out}: {exc.strerror or exc}; choose another --out"
        raise OutputError(msg) from None


def run_firmware(model: Path, profile: Profile, *, tflm: Path | None = None, samples: np.ndarray | None = None,
                 sample_source: str = "", sample_count: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, out_dir: Path | None = None) -> FirmwareResult:
    """Build, run and compare; with `out_dir`, the image and its sources are kept there (written atomically).

    `sample_count` None: 8 samples, or 20 consecutive frames for a stateful model."""
    from edgeopt.mcu.c_export import render
    from edgeopt.mcu.check import measure
    from edgeopt.mcu.compare import litert_outputs, make_feeds
    from edgeopt.mcu.io_layout import io_layout
    from edgeopt.mcu.tflm import run_tflm
    from edgeopt.runtime import open_runner
    from edgeopt.runtime.base import RunnerOptions

    spec = core_spec(profile.mcu.core, profile.name)
    machine = emulator(spec, profile.name)
    tc = find_toolchain()
    qemu = find_qemu()
    require_confinement()  # no Landlock and no EDGEOPT_SANDBOX=off: exit 2 before any work
    tree = find_tree(tflm)
    cache = LibraryCache(spec, tc, tree)  # its folders are checked now: a loose cache is refused before any work
    verified = measure(Path(model), profile, strict_io=False)  # host checks: ops, int8, host arena; I/O as it is
    variables = resource_variables(verified.graph, verified.path.name)
    if sample_count is None:
        sample_count = STATEFUL_FRAMES if variables.stateful else DEFAULT_SAMPLES
    io = io_layout(Path(model), verified.graph)  # its build report's layout (NHWC vs the ONNX NCHW), else its own

    runner = open_runner(verified.path, RunnerOptions(threads=1, xnnpack=False))
    feeds = make_feeds(runner.inputs, samples, sample_count, keys=runner.input_keys)
    if not sample_source:
        sample_source = "random (seed 0)" if samples is None else "given samples"

    cache.with_framework()
    flash_limit, ram_limit = _limits(profile, machine.code_bytes, machine.ram_bytes)
    from edgeopt import __version__

    with tempfile.TemporaryDirectory(prefix="edgeopt-fw-") as tmp:
        work = Path(tmp)
        t0, compiled_before = time.perf_counter(), cache.seconds  # with_framework() above may have compiled already
        header, source, _ = render(verified.path.read_bytes(), verified.graph, "g_model",
                                   arena_bytes=verified.arena_with_margin, arena_measured=verified.arena.arena_bytes,
                                   margin_note=verified.margin_note, source_name=verified.path.name, version=__version__,
                                   layouts=io.c_layouts(), notes=io.c_notes())
        (work / "g_model.h").write_text(header)
        (work / "g_model.cc").write_text(source)
        image = build_image(work, spec, tc, tree, cache, flash_bytes=flash_limit, ram_bytes=ram_limit, profile=profile.name)
        build_s = time.perf_counter() - t0 - (cache.seconds - compiled_before)  # the library compiles of this window
        lib = cache.library()
        fig = image.figures
        run_dir = work / "run"  # QEMU's only writable place: the image and its sources stay out of its reach
        run_dir.mkdir()
        write_inputs(run_dir / "in.bin", feeds)
        run = run_qemu(qemu, machine, image.elf, run_dir, timeout_s)
        device = parse_report(run, machine, len(feeds))
        outputs = read_outputs(run_dir / "out.bin", runner.outputs, len(feeds))
        if out_dir is not None:
            _keep(work, Path(out_dir))

    host = run_tflm(verified.path, verified.arena.arena_bytes, feeds)
    _, lite = litert_outputs(verified.path, feeds)
    result = FirmwareResult(
        model=str(model), profile=profile.name, core=str(spec.core), machine=machine.machine, library=lib, elf=fig,
        flash_limit_bytes=flash_limit, ram_limit_bytes=ram_limit, device=device,
        host_arena_bytes=verified.arena.arena_bytes, samples=len(feeds), sample_source=sample_source,
        vs_host_tflm=agree(outputs, host.outputs, "host TFLM"), vs_litert=agree(outputs, lite, "LiteRT"),
        latency=None, build_seconds=build_s, qemu_seconds=run.seconds,
        io_types=(tuple(t.dtype for t in verified.graph.inputs), tuple(t.dtype for t in verified.graph.outputs)),
        io_findings=verified.io_findings, resource_variables=variables.count, io=io)
    return dataclasses.replace(result, latency=_latency(profile, result.instructions()))
