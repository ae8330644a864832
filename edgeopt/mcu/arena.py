"""The exact minimal tensor arena, found by bisection in the real TFLM interpreter.

A probe succeeds when the interpreter allocates its tensors AND one invoke runs.
The result is the smallest size that succeeds, with size - 1 failing (both checked).

What the number means (tflite-micro 0.dev2026, Python wrapper):
- It is measured on the host with the RecordingMicroAllocator the Python wrapper
  uses; on a 64-bit host the interpreter's own structs (TfLiteTensor, node and
  registration arrays) are larger than on a 32-bit Cortex-M, so the host figure
  is an upper bound for those parts.
- TFLM aligns the arena start to 16 bytes (MicroArenaBufferAlignment) and tensor
  buffers to 16; the host buffer is already 16-aligned, so no bytes are lost there.
  Declare the device arena `alignas(16)` (the C export does) or the device may
  need up to 15 bytes more. The minimum itself need not be a multiple of 16
  (6224 and 20248 bytes for two test models).
- Optimized kernels (CMSIS-NN, ESP-NN) may request scratch buffers the host
  reference kernels do not; the profile's margin ([mcu] arena_margin_*) covers that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import KernelPrepareError, ModelFileError, UnsupportedOpError
from edgeopt.mcu.tflm import PrepareFailure, ProbeResult, ProbeSession, prepare_failure

ALIGNMENT = 16
START_BYTES = 16 * 1024
MAX_ARENA_BYTES = 64 * 1024 * 1024  # far above any MCU; a failure there is not about the arena


@dataclass(frozen=True)
class ArenaMeasurement:
    arena_bytes: int  # smallest arena that allocates and invokes
    probes: int  # interpreter runs it took
    crashes: int  # probes that killed the worker (counted as failures)
    failure_below: str  # why arena_bytes - 1 fails (the TFLM message)


def with_margin(arena_bytes: int, percent: float, extra_bytes: int) -> int:
    """Measured arena + percent + extra bytes, rounded up to the 16-byte alignment."""
    raw = arena_bytes * (1.0 + percent / 100.0) + extra_bytes
    return int(-(-int(raw + 0.999999) // ALIGNMENT) * ALIGNMENT)


def measure_arena(model: Path, *, max_bytes: int = MAX_ARENA_BYTES) -> ArenaMeasurement:
    """Bisection over the arena size; raises if the model fails even with `max_bytes`."""
    model = Path(model)
    with ProbeSession(model) as session:
        probes = 0

        def probe(n: int) -> ProbeResult:
            nonlocal probes
            probes += 1
            return session.probe(n)

        hi = START_BYTES
        first = probe(hi)
        if not first.ok and prepare_failure(first.reason) is not None:
            # A kernel refused the model: no arena size helps, so no search. One probe at the largest size
            # confirms it is not a shortage the log did not name.
            hi = max_bytes
            first = probe(hi)
            refusal = None if first.ok else prepare_failure(first.reason)
            if refusal is not None:
                raise _prepare_error(model, refusal)
        while not first.ok and hi < max_bytes:
            hi = min(hi * 4, max_bytes)
            first = probe(hi)
        if not first.ok:
            raise _not_runnable(model, first, max_bytes)
        lo, lo_reason = 0, "an empty arena"
        while hi - lo > 1:
            mid = (lo + hi) // 2
            r = probe(mid)
            if r.ok:
                hi = mid
            else:
                lo, lo_reason = mid, r.reason
        # The answer must work and the size just below must fail (bisection keeps both, but check).
        if not probe(hi).ok:
            msg = f"{model}: TFLM arena measurement is not repeatable at {hi} bytes; rerun with EDGEOPT_DEBUG=1"
            raise ModelFileError(msg)
        below = probe(hi - 1)
        if below.ok:
            msg = f"{model}: TFLM accepts {hi - 1} bytes after rejecting it; arena success is not monotonic here"
            raise ModelFileError(msg)
        return ArenaMeasurement(arena_bytes=hi, probes=probes, crashes=session.crashes, failure_below=below.reason or lo_reason)


def _prepare_error(model: Path, f: PrepareFailure) -> KernelPrepareError:
    msg = (f"{model}: TFLite Micro's {f.op} kernel refused the model in Prepare (operator {f.node}): {f.message.rstrip('.')}; "
           f"this is not an arena shortage: re-convert so {f.op} gets the tensor types and quantization TFLM supports")
    return KernelPrepareError(msg, f.op, f.node, f.message)


def _not_runnable(model: Path, r: ProbeResult, max_bytes: int) -> Exception:
    import re

    ops = tuple(sorted(set(re.findall(r"Didn't find op for builtin opcode '([A-Za-z0-9_]+)'", r.reason))))
    custom = tuple(sorted(set(re.findall(r"(?:custom op|Custom op)[^']*'([^']+)'", r.reason))))
    if ops or custom:
        names = ops + custom
        return UnsupportedOpError(f"{model}: TFLite Micro lacks op(s) {', '.join(names)}; re-convert with TFLM-supported builtin ops", names)
    if r.reason.startswith("crash"):
        return ModelFileError(f"{model}: the TFLite Micro interpreter crashed even with a {max_bytes:,}-byte arena ({r.reason}): "
                              "a kernel check failed while preparing the model, not a memory shortage")
    return ModelFileError(f"{model}: TFLite Micro cannot run the model even with a {max_bytes:,}-byte arena: {r.reason}")
