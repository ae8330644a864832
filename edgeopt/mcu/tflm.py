"""Parent side of the TFLite Micro worker: arena probes and inference, crash-safe.

Every call into TFLM happens in a child process (`edgeopt/mcu/worker.py`), because
the TFLM interpreter can take the whole process down with SIGSEGV on a too-small
arena. A crashed child is reported as a failed probe and a fresh one is started.
"""

from __future__ import annotations

import importlib.util
import re
import selectors
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.errors import ModelFileError, RuntimeUnavailableError

WORKER = Path(__file__).with_name("worker.py")
PROBE_TIMEOUT_S = 120.0


def require_tflm() -> None:
    if importlib.util.find_spec("tflite_micro") is None:
        msg = "TFLite Micro is not installed; install it with: pip install 'edgeopt[mcu]' (tflite-micro)"
        raise RuntimeUnavailableError(msg)


def _worker_cmd(*args: str) -> list[str]:
    # Run the file directly: the worker imports only numpy and tflite_micro.
    return [sys.executable, str(WORKER), *args]


@dataclass(frozen=True)
class ProbeResult:
    arena: int
    ok: bool
    reason: str  # "" when ok; "crash (signal N)" when the interpreter killed the process


# TFLM's allocator messages: an AllocateTensors failure with one of these is a memory shortage, even when a
# kernel's Prepare then fails too (a temp buffer it could not get); without them a Prepare failure is the kernel's.
_MEMORY = re.compile(r"Failed to (resize buffer|allocate|populate)|Unable to allocate|[Aa]rena size is too small|"
                     r"Couldn't allocate|[Oo]ut of memory")
_PREPARE = re.compile(r"Node (\S+) \(number (\d+)\) failed to prepare with status (-?\d+)")


@dataclass(frozen=True)
class PrepareFailure:
    """A kernel refused the model in Prepare, as TFLM logged it: not about the arena size."""

    op: str  # the builtin op name, e.g. CONV_2D
    node: int  # the operator index in the subgraph
    message: str  # the kernel's own message (a failed check or its log line)


def prepare_failure(reason: str) -> PrepareFailure | None:
    """The Prepare failure in a probe's reason (the TFLM log), or None when it is not one or memory ran out."""
    log = reason.split(": ", 1)[1] if reason.startswith("TFLM failed") and ": " in reason else reason  # the native part
    m = _PREPARE.search(log)
    if m is None or _MEMORY.search(log):
        return None
    before = log[:m.start()].rstrip(" |")
    message = " | ".join(part.strip() for part in before.split(" | ") if part.strip())
    return PrepareFailure(op=m.group(1), node=int(m.group(2)), message=message or f"status {m.group(3)}")


class ProbeSession:
    """A long-lived worker answering "does the model allocate and invoke with N bytes?"."""

    def __init__(self, model: Path) -> None:
        require_tflm()
        self.model = Path(model)
        self.crashes = 0
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(_worker_cmd("probe", str(self.model)), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        return self._proc

    def probe(self, arena: int) -> ProbeResult:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"{int(arena)}\n")
            proc.stdin.flush()
        except BrokenPipeError:
            return self._crashed(arena)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(PROBE_TIMEOUT_S)
        sel.close()
        if not ready:
            self.close()
            return ProbeResult(arena, False, f"no answer within {PROBE_TIMEOUT_S:g} s")
        line = proc.stdout.readline()
        if not line:
            return self._crashed(arena)
        line = line.rstrip("\n")
        return ProbeResult(arena, line == "ok", "" if line == "ok" else line.removeprefix("fail "))

    def _crashed(self, arena: int) -> ProbeResult:
        assert self._proc is not None
        code = self._proc.wait()
        self._proc = None
        self.crashes += 1
        return ProbeResult(arena, False, f"crash (exit {code})")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None

    def __enter__(self) -> ProbeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TflmRun:
    outputs: tuple[tuple[np.ndarray, ...], ...]  # [sample][output]
    latency_ms: tuple[float, ...]  # host wall time of each invoke (x86/arm64 host, not the device)


def run_tflm(model: Path, arena: int, feeds: list[list[np.ndarray]], timeout_s: float = 600.0) -> TflmRun:
    """Run each sample (a list of input arrays) through TFLM with `arena` bytes, in a child process."""
    require_tflm()
    with tempfile.TemporaryDirectory(prefix="edgeopt-tflm-") as tmp:
        src, dst = str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.npz")
        np.savez(src, **{f"in{s}_{i}": x for s, sample in enumerate(feeds) for i, x in enumerate(sample)})  # type: ignore[arg-type]
        try:
            proc = subprocess.run(_worker_cmd("run", str(model), str(int(arena)), src, dst), capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            msg = f"{model}: TFLite Micro did not finish {len(feeds)} inferences in {timeout_s:g} s"
            raise ModelFileError(msg) from None
        answer = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode < 0 or (answer != "ok" and not answer.startswith("fail")):
            msg = f"{model}: the TFLite Micro interpreter crashed (exit {proc.returncode}) while running the samples"
            raise ModelFileError(msg)
        if answer != "ok":
            msg = f"{model}: TFLite Micro cannot run the model: {answer.removeprefix('fail ')}"
            raise ModelFileError(msg)
        with np.load(dst, allow_pickle=False) as z:
            n_out = sum(1 for k in z.files if k.startswith("out0_"))
            outputs = tuple(tuple(z[f"out{s}_{o}"] for o in range(n_out)) for s in range(len(feeds)))
            latency = tuple(float(v) for v in z["latency_ms"])
    return TflmRun(outputs, latency)
