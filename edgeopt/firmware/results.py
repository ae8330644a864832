"""What the firmware reported (the EDGEOPT protocol lines and out.bin), and how it compares.

A difference between the device and a host runtime names the sample, the output, the element
and both values.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.errors import InputError, KernelPrepareError, ModelFileError
from edgeopt.firmware.cores import QemuMachine
from edgeopt.firmware.qemu import QemuRun
from edgeopt.mcu.tflm import prepare_failure
from edgeopt.runtime.base import TensorInfo

CALIBRATION_TOLERANCE = 0.01  # measured instructions per tick vs 1e9 / clock


@dataclass(frozen=True)
class DeviceReport:
    """The firmware's own measurements on the emulated core."""

    arena_bytes: int  # smallest arena with which AllocateTensors() and Invoke() succeed
    arena_below_fails: bool  # arena_bytes - 1 was tried and failed
    arena_used_bytes: int  # TFLM's arena_used_bytes() with the full buffer (under-reports)
    arena_reserved_bytes: int  # the static buffer in the image
    arena_trials: int
    instructions_per_tick: float  # 1e9 / the machine's clock under -icount shift=0
    calibrated_instructions_per_tick: float  # measured by the firmware's calibration loop (checked within 1 %)
    ticks: tuple[int, ...]  # SysTick ticks of each Invoke()
    stack_used_bytes: int
    stack_reserved_bytes: int
    variable_table_bytes: int | None = None  # a stateful model: allocator + MicroResourceVariables in the arena

    @property
    def instructions(self) -> tuple[int, ...]:
        return tuple(int(round(t * self.instructions_per_tick)) for t in self.ticks)

    def instruction_stats(self, skip: int = 0) -> tuple[int, int, int]:
        """(min, median, max) over the samples after the first `skip`."""
        ins = self.instructions[skip:]
        return min(ins), int(statistics.median(ins)), max(ins)


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


def parse_report(run: QemuRun, machine: QemuMachine, samples: int) -> DeviceReport:
    lines = [ln.strip() for ln in run.stdout.splitlines() if ln.startswith("EDGEOPT ")]
    tflm = [ln.removeprefix("EDGEOPT tflm ") for ln in lines if ln.startswith("EDGEOPT tflm ")]
    said = (" (TFLM: " + " | ".join(tflm[-3:]) + ")") if tflm else ""
    for ln in lines:
        if ln.startswith("EDGEOPT hardfault"):
            f = _fields(ln)
            msg = (
                f"the firmware hard-faulted on {machine.machine} at pc={f.get('pc')} "
                                 f"(lr={f.get('lr')}, CFSR={f.get('cfsr')}); keep the image with --out and look the address up in app.map{said}"
            )
            raise ModelFileError(msg)
        if ln.startswith("EDGEOPT error"):
            msg = f"the firmware failed on {machine.machine}: {ln.removeprefix('EDGEOPT error ')}{said}"
            raise ModelFileError(msg)
        if ln.startswith("EDGEOPT arena_too_small"):
            f = _fields(ln)
            refusal = prepare_failure(" | ".join(tflm))
            if refusal is not None:  # a kernel (e.g. CMSIS-NN) refused the model: no arena size helps
                msg = (f"the firmware's {refusal.op} kernel refused the model in Prepare on {machine.machine} "
                       f"(operator {refusal.node}): {refusal.message.rstrip('.')}; this is not an arena shortage")
                raise KernelPrepareError(msg, refusal.op, refusal.node, refusal.message)
            msg = (
                f"the model does not allocate and invoke on {machine.machine} even with the full "
                                 f"{f.get('reserved')}-byte arena{said}"
            )
            raise ModelFileError(msg)
    done = [ln for ln in lines if ln.startswith("EDGEOPT done")]
    if not done:
        tail = (run.stdout.strip().splitlines() or ["no output"])[-1][:300]
        msg = f"the firmware stopped on {machine.machine} without finishing (QEMU exit {run.returncode}): {tail}{said}"
        raise ModelFileError(msg)
    cal = _fields(next(ln for ln in lines if ln.startswith("EDGEOPT calibration")))
    ipt = int(cal["instructions"]) / max(1, int(cal["ticks"]))
    expected = machine.instructions_per_tick
    if abs(ipt - expected) > CALIBRATION_TOLERANCE * expected:
        msg = (
            f"SysTick calibration on {machine.machine}: {ipt:.3f} instructions per tick, expected "
                             f"{expected:g} (1e9 / {machine.clock_hz} Hz under -icount shift=0); instruction counts would be wrong"
        )
        raise ModelFileError(msg)
    arena = _fields(next(ln for ln in lines if ln.startswith("EDGEOPT arena ")))
    ticks = tuple(int(_fields(ln)["ticks"]) for ln in lines if ln.startswith("EDGEOPT sample "))
    stack = _fields(next(ln for ln in lines if ln.startswith("EDGEOPT stack")))
    table = [_fields(ln) for ln in lines if ln.startswith("EDGEOPT variables ")]
    if len(ticks) != samples or int(_fields(done[0])["samples"]) != samples:
        msg = f"the firmware ran {len(ticks)} of {samples} samples on {machine.machine}"
        raise ModelFileError(msg)
    return DeviceReport(
        arena_bytes=int(arena["min"]), arena_below_fails=arena["below_status"] != "0" and arena["min_status"] == "0",
        arena_used_bytes=int(arena["used"]), arena_reserved_bytes=int(arena["reserved"]), arena_trials=int(arena["trials"]),
        instructions_per_tick=expected, calibrated_instructions_per_tick=ipt, ticks=ticks, stack_used_bytes=int(stack["used"]),
        stack_reserved_bytes=int(stack["reserved"]), variable_table_bytes=int(table[0]["table_bytes"]) if table else None)


def write_inputs(path: Path, feeds: list[list[np.ndarray]]) -> None:
    """in.bin: every input tensor's bytes, sample after sample (C order, the tensor's own dtype)."""
    with Path(path).open("wb") as fh:
        for sample in feeds:
            for x in sample:
                fh.write(np.ascontiguousarray(x).tobytes())


def read_outputs(path: Path, outputs: tuple[TensorInfo, ...], samples: int) -> list[list[np.ndarray]]:
    raw = path.read_bytes() if path.is_file() else b""
    shapes = [tuple(max(d, 1) for d in o.shape) for o in outputs]
    sizes = [int(np.prod(s)) * np.dtype(o.dtype).itemsize for s, o in zip(shapes, outputs, strict=True)]
    if len(raw) != samples * sum(sizes):
        msg = f"out.bin holds {len(raw)} bytes; {samples} samples x {sum(sizes)} output bytes expected"
        raise InputError(msg)
    result, pos = [], 0
    for _ in range(samples):
        row = []
        for shape, size, info in zip(shapes, sizes, outputs, strict=True):
            row.append(np.frombuffer(raw[pos:pos + size], dtype=info.dtype).reshape(shape).copy())
            pos += size
        result.append(row)
    return result


@dataclass(frozen=True)
class Mismatch:
    sample: int
    output: int
    element: tuple[int, ...]
    device: float
    reference: float

    def describe(self, reference: str) -> str:
        return (f"sample {self.sample}, output {self.output}, element {list(self.element)}: "
                f"device {self.device:g}, {reference} {self.reference:g}")


@dataclass(frozen=True)
class Agreement:
    reference: str  # "host TFLM" or "LiteRT"
    samples: int
    bit_exact: bool
    mismatched_elements: int
    max_abs_diff: float
    first: Mismatch | None

    def describe(self) -> str:
        if self.bit_exact:
            return f"bit-exact with {self.reference} on {self.samples} samples"
        assert self.first is not None
        return (f"differs from {self.reference} in {self.mismatched_elements} element(s), max |diff| {self.max_abs_diff:g}; "
                f"first: {self.first.describe(self.reference)}")


def agree(device: list[list[np.ndarray]], ref: list[list[np.ndarray]] | tuple[tuple[np.ndarray, ...], ...],
          reference: str) -> Agreement:
    first, mismatched, worst = None, 0, 0.0
    for s, (dev_sample, ref_sample) in enumerate(zip(device, ref, strict=True)):
        for o, (d, r) in enumerate(zip(dev_sample, ref_sample, strict=True)):
            r = np.asarray(r).reshape(d.shape)
            diff = d.astype(np.float64) != r.astype(np.float64)
            n = int(np.count_nonzero(diff))
            if n:
                mismatched += n
                worst = max(worst, float(np.max(np.abs(d.astype(np.float64) - r.astype(np.float64)))))
                if first is None:
                    idx = tuple(int(i) for i in np.argwhere(diff)[0])
                    first = Mismatch(s, o, idx, float(d[idx]), float(r[idx]))
    return Agreement(reference, len(device), mismatched == 0, mismatched, worst, first)
