"""The TFLite Micro interpreter, run in a child process.

The TFLM Python interpreter raises RuntimeError for most failures, but with a
too-small arena it can also corrupt memory and kill the process with SIGSEGV
(seen with tflite-micro 0.dev2026: arenas below ~500 bytes, and some sizes just
below the minimum, e.g. 1520 bytes for a 3.9 KB model needing ~12 KB). So every
TFLM call runs here, in a child, and the parent survives a crash.

    python -m edgeopt.mcu.worker probe MODEL          # stdin: arena sizes; stdout: "ok" | "fail <why>" | "crash"
    python -m edgeopt.mcu.worker run MODEL ARENA IN.npz OUT.npz

`run` reads arrays in0_0, in0_1... (sample 0, input 0...) and writes out<s>_<o>,
plus `latency_ms` (host wall time of each invoke). Native log lines are kept out
of the protocol stream; the last TFLM message is returned as the reason of a failure.

Never imports TensorFlow.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _interpreter(model: bytes, arena: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena)


def _details(it: Any, getter: str) -> list[dict[str, Any]]:
    out = []
    i = 0
    while True:
        try:
            out.append(getattr(it, getter)(i))
        except (RuntimeError, ValueError, IndexError):
            return out
        i += 1
        if i > 1024:
            return out


class _NativeLog:
    """Send fd 1 and 2 to a temp file; return what the native code printed."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker: fds 1/2 are dup2'd onto it
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)

    def take(self) -> str:
        self.file.flush()
        self.file.seek(0)
        text = self.file.read().decode("utf-8", "replace")
        self.file.seek(0)
        self.file.truncate()
        return text


def _reason(exc: Exception, log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    # The most specific native line first; the Python message is generic ("failed to allocate tensors").
    keep = [ln for ln in lines if "Didn't find op" in ln or "not supported" in ln.lower() or "unsupported" in ln.lower()
            or "Failed to" in ln or "failed to" in ln or "Missing" in ln or "was not true" in ln]
    node = next((i for i, ln in enumerate(lines) if "failed to prepare" in ln), None)
    if node is not None:
        # A kernel's Prepare failed: the kernel's own message is the line(s) TFLM printed just before
        # "Node OP (number N) failed to prepare", whatever their wording; allocator lines stay (arena.py
        # tells a memory shortage from a kernel refusal by them).
        memory = [ln for ln in lines[:node]
                  if any(m in ln for m in ("Failed to", "Unable to allocate", "too small", "ut of memory", "Couldn't allocate"))]
        kernel = [ln for ln in lines[max(0, node - 2):node] if ln not in memory]
        return f"{str(exc).strip()}: {' | '.join([*memory[-1:], *kernel, lines[node]])}".replace("\n", " ")[:600]
    text = " | ".join((keep or lines)[-3:]) or str(exc)
    return f"{str(exc).strip()}: {text}".replace("\n", " ")[:600]


def probe(model: bytes, arena: int) -> tuple[bool, str]:
    """Allocate with `arena` bytes and invoke once on zeros."""
    it = _interpreter(model, arena)
    for i, d in enumerate(_details(it, "get_input_details")):
        it.set_input(np.zeros(tuple(int(s) for s in d["shape"]), d["dtype"]), i)
    it.invoke()
    return True, ""


def _probe_loop(model_path: str, proto: Any) -> int:
    model = Path(model_path).read_bytes()
    log = _NativeLog()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        arena = int(line)
        try:
            probe(model, arena)
            answer = "ok"
        except Exception as exc:  # noqa: BLE001 - TFLM raises RuntimeError/ValueError
            answer = "fail " + _reason(exc, log.take())
        log.take()
        proto.write(answer + "\n")
        proto.flush()
    return 0


def _run(model_path: str, arena: int, in_path: str, out_path: str, proto: Any) -> int:
    model = Path(model_path).read_bytes()
    log = _NativeLog()
    try:
        it = _interpreter(model, arena)
        with np.load(in_path, allow_pickle=False) as z:
            feeds = {k: z[k] for k in z.files}
        n_in = len(_details(it, "get_input_details"))
        n_out = len(_details(it, "get_output_details"))
        n_samples = len({k.split("_")[0] for k in feeds})
        results: dict[str, np.ndarray] = {}
        lat = []
        for s in range(n_samples):
            for i in range(n_in):
                it.set_input(feeds[f"in{s}_{i}"], i)
            t0 = time.perf_counter()
            it.invoke()
            lat.append((time.perf_counter() - t0) * 1000.0)
            for o in range(n_out):
                results[f"out{s}_{o}"] = np.array(it.get_output(o), copy=True)
        results["latency_ms"] = np.asarray(lat, dtype=np.float64)
        np.savez(out_path, **results)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        proto.write("fail " + _reason(exc, log.take()) + "\n")
        proto.flush()
        return 1
    proto.write("ok\n")
    proto.flush()
    return 0


def main(argv: list[str]) -> int:
    proto = os.fdopen(os.dup(1), "w")  # the protocol stream: the original stdout
    if argv[:1] == ["probe"] and len(argv) == 2:
        return _probe_loop(argv[1], proto)
    if argv[:1] == ["run"] and len(argv) == 5:
        return _run(argv[1], int(argv[2]), argv[3], argv[4], proto)
    proto.write("fail usage: worker probe MODEL | worker run MODEL ARENA IN.npz OUT.npz\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
