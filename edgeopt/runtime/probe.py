"""Open a model in its native runtime in a child process first, so a crash kills the child, not us.

LiteRT and onnxruntime are C++: on some malformed files they die with SIGSEGV
instead of raising (fuzzing found LiteRT crashes on files that pass every
structural check, e.g. a RESHAPE whose shape input is marked "omitted").
`probe()` runs `open_runner` + one invoke (on the caller's data, else seeded random inputs) in a
`python -m edgeopt.runtime.probe_child` child with a timeout; a signal death or a hang
becomes `ModelFileError` (exit 2), an error raised in the child is re-raised
here with its own class and message, and success is remembered for the
content hash and options (not the thread count) so each file is probed once per process.

The child serves one job after another: one child per thread of this process, started by the first model and
reused by the next ones (of either runtime), so a `bench` of N models pays the child's Python and numpy start
once and each runtime's import once, not N times. That stays sound: this process loads those models one after another too, and a
child that dies takes no verdict with it but the running model's. When a *reused* child dies, the model is
tried once more in a fresh child, so an earlier model's leftovers (or the end of the thread that started the
child: PR_SET_PDEATHSIG) never condemn it; only a death in a fresh child does. Each result says how its probe
ran (`ProbeRun`).

    EDGEOPT_PROBE=0              skip the probe (files you trust; saves the child's start, ~0.3-3 s)
    EDGEOPT_PROBE_TIMEOUT=120    seconds allowed for load + one invoke

The child imports the runtime only (numpy, ai_edge_litert or onnxruntime), never TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import errors, switches
from edgeopt.errors import InputError, ModelFileError

DEFAULT_TIMEOUT = 120.0
CHILD_MODULE = "edgeopt.runtime.probe_child"  # imports the runtime registry; this module does not
_passed: set[tuple[Any, ...]] = set()


class ProbeRun(StrEnum):
    """How a model's crash probe ran (a bench result's `probe`)."""

    FRESH = "fresh child"  # it started the child process (the child's start is in its probe_ms)
    REUSED = "reused child"  # in the child an earlier model of this process started
    PASSED_BEFORE = "passed before"  # the same file and options passed earlier in this process: not run again
    OFF = "off"  # EDGEOPT_PROBE=0


def enabled() -> bool:
    return switches.switch("EDGEOPT_PROBE", default=True)


MAX_TIMEOUT = 86400.0


def _timeout() -> float:
    """EDGEOPT_PROBE_TIMEOUT in seconds: a finite number in (0, one day]; anything else is exit 2."""
    raw = os.environ.get("EDGEOPT_PROBE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        msg = (
            f"EDGEOPT_PROBE_TIMEOUT={raw[:40]!r} is not a time in seconds (0 < t <= {MAX_TIMEOUT:g}); "
                         f"unset it for {DEFAULT_TIMEOUT:g}"
        )
        raise InputError(msg)
    return value


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def probe(path: Path, runtime: str, threads: int, xnnpack: bool, graph_optimization: str,
          shapes: Mapping[str, tuple[int, ...]] | None = None, data: Any = None,
          int_range: tuple[int, int] | None = None) -> ProbeRun:
    """Load `path` in `runtime` and invoke once in a child; raise the child's error or ModelFileError on a crash.

    The child feeds the sample of `data` the benchmark will feed (arrays by input name or in order, one batch:
    edgeopt.runtime.shapes.data_sample), or seeded random inputs sized by `shapes` where dimensions are symbolic.
    """
    path = Path(path)
    arrays = _arrays(data)
    layout = tuple((k, tuple(np.shape(v)), str(np.asarray(v).dtype)) for k, v in arrays.items())
    try:  # thread count does not change what loads
        key = (_digest(path), runtime, xnnpack, graph_optimization, tuple(sorted((shapes or {}).items())), layout,
               int_range)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise ModelFileError(msg) from None
    if key in _passed:
        return ProbeRun.PASSED_BEFORE
    with tempfile.TemporaryDirectory(prefix="edgeopt-probe-") as tmp:
        feeds = ""
        if arrays:
            feeds = str(Path(tmp) / "feeds.npz")
            np.savez(feeds, **_rows(arrays))
        job = {"runtime": runtime, "path": str(path), "threads": threads, "xnnpack": xnnpack,
               "graph_opt": graph_optimization, "shapes": {k: list(v) for k, v in (shapes or {}).items()},
               "feeds": feeds, "int_range": None if int_range is None else list(int_range)}
        run = _in_child(path, runtime, job, _timeout())
    _passed.add(key)
    return run


FEED_BYTES = 256 << 20  # data up to this size goes to the child whole; larger sets only their first rows
FEED_ROWS = 256


def _rows(arrays: dict[str, Any]) -> dict[str, Any]:
    """The arrays the child needs to pick the benchmark's sample (runtime.shapes.data_sample) exactly as we will."""
    out = {k: np.asarray(v) for k, v in arrays.items()}
    if sum(a.nbytes for a in out.values()) > FEED_BYTES:
        out = {k: a[:FEED_ROWS] if a.ndim else a for k, a in out.items()}
    return out


def _arrays(data: Any) -> dict[str, Any]:
    """`data` as named arrays in order (a list becomes arr_0, arr_1, ...: matched by position)."""
    if data is None:
        return {}
    if isinstance(data, dict):
        return dict(data)
    return {f"arr_{i}": a for i, a in enumerate(data)}


class _Lost(Exception):
    """The child died (`code`: its exit status) or did not answer in time (`code` None)."""

    def __init__(self, code: int | None, tail: str) -> None:
        super().__init__(code)
        self.code, self.tail = code, tail

    @property
    def crashed(self) -> bool:
        return self.code is not None and self.code < 0 and -self.code not in (signal.SIGINT, signal.SIGTERM,
                                                                                 signal.SIGHUP)

    def error(self, path: Path, runtime: str, timeout: float) -> BaseException:
        if self.code is None:
            return ModelFileError(
                f"{path}: {runtime} did not finish loading and running the model within {timeout:g} s "
                "(a corrupt file or a model too large for this machine; EDGEOPT_PROBE_TIMEOUT raises the limit)")
        if self.code < 0:
            sig = -self.code
            if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C or kill reached the whole group
                return KeyboardInterrupt()
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            why = "ran out of memory or was killed" if sig == signal.SIGKILL else "crashed"
            return ModelFileError(
                f"{path}: {runtime} {why} ({name}) while loading or running the model in a child "
                "process; the file is corrupt or malformed, re-export it")
        return ModelFileError(
            f"{path}: {runtime} failed while loading the model in a child process "
            f"(exit {self.code}: {self.tail or 'no output'}); the file is corrupt or malformed")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


class _Worker:
    """One `python -m edgeopt.runtime.probe_child`, serving jobs; its stderr goes to a private log file."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="edgeopt-probe-child-"))
        self.log = self.dir / "stderr.log"
        self.env = _child_env()
        with self.log.open("ab") as log:  # O_APPEND: we read it while the child writes
            self.proc = subprocess.Popen([sys.executable, "-m", CHILD_MODULE], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, env=self.env, close_fds=True)
        self.pending = b""

    def usable(self) -> bool:
        """Alive, and started with today's environment (EDGEOPT_MAX_ONNX_NODES, ... are read in the child)."""
        return self.proc.poll() is None and self.env == _child_env()

    def call(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `job`, return the answer; raise _Lost when the child dies or does not answer within `timeout`."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        logged = self.log.stat().st_size
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ConnectionResetError):
            raise _Lost(self.proc.wait(), self._tail(logged)) from None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Lost(None, "")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise _Lost(self.proc.wait(), self._tail(logged))
                self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        answer = _result(line)
        if answer is None:  # not our child's answer: treat it as a failure of the child
            raise _Lost(1, line.decode("utf-8", "replace")[:200])
        return answer

    def _tail(self, start: int) -> str:
        try:
            with self.log.open("rb") as fh:
                fh.seek(max(start, self.log.stat().st_size - 8192))
                lines = fh.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return (lines or [""])[-1][:200]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_workers: dict[int, _Worker] = {}  # thread -> its child (serving every runtime)
_lock = threading.Lock()


def _in_child(path: Path, runtime: str, job: dict[str, Any], timeout: float) -> ProbeRun:
    """Run `job` in this thread's child (started if there is none); how it ran."""
    slot = threading.get_ident()
    with _lock:
        worker = _workers.pop(slot, None)
    if worker is not None and not worker.usable():
        worker.close()
        worker = None
    run = ProbeRun.REUSED if worker is not None else ProbeRun.FRESH
    while True:
        if worker is None:
            worker = _Worker()
        try:
            answer = worker.call(job, timeout)
        except _Lost as lost:
            worker.close()
            if run is ProbeRun.REUSED and lost.crashed:  # maybe not this model's doing: once more, in a fresh child
                worker, run = None, ProbeRun.FRESH
                continue
            raise lost.error(path, runtime, timeout) from None
        except BaseException:  # Ctrl-C while the child works on the job: it goes with it
            worker.close()
            raise
        with _lock:
            _workers[slot] = worker
        if not answer.get("ok"):
            raise _error(answer)
        return run


def close() -> None:
    """Stop every probe child (at exit; a later probe starts a new one)."""
    with _lock:
        workers = list(_workers.values())
        _workers.clear()
    for w in workers:
        w.close()


atexit.register(close)


def _result(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error(result: dict[str, Any]) -> errors.EdgeoptError:
    cls = getattr(errors, str(result.get("class", "")), None)
    message = str(result.get("message", "")).splitlines()[0][:400] if result.get("message") else "unknown error"
    if isinstance(cls, type) and issubclass(cls, errors.InputError):
        if cls is errors.UnsupportedOpError:
            return errors.UnsupportedOpError(message, tuple(result.get("ops", ())))
        return cls(message)
    return ModelFileError(message)
