"""Open a model in its native runtime in a child process first, so a crash kills the child, not us.

LiteRT and onnxruntime are C++: on some malformed files they die with SIGSEGV
instead of raising (fuzzing found LiteRT crashes on files that pass every
structural check, e.g. a RESHAPE whose shape input is marked "omitted").
`probe()` runs `open_runner` + one invoke (on the caller's data, else seeded random inputs) in a fresh
`python -m edgeopt.runtime.probe_child` child with a timeout; a signal death or a hang
becomes `ModelFileError` (exit 2), an error raised in the child is re-raised
here with its own class and message, and success is remembered for the
content hash and options (not the thread count) so each file is probed once per process.

    EDGEOPT_PROBE=0              skip the probe (files you trust; saves ~0.3 s per file)
    EDGEOPT_PROBE_TIMEOUT=120    seconds allowed for load + one invoke

The child imports the runtime only (numpy, ai_edge_litert or onnxruntime), never TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import errors, switches
from edgeopt.errors import InputError, ModelFileError

DEFAULT_TIMEOUT = 120.0
CHILD_MODULE = "edgeopt.runtime.probe_child"  # imports the runtime registry; this module does not
_passed: set[tuple[Any, ...]] = set()


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
          int_range: tuple[int, int] | None = None) -> None:
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
        return
    with tempfile.TemporaryDirectory(prefix="edgeopt-probe-") as tmp:
        feeds = ""
        if arrays:
            feeds = str(Path(tmp) / "feeds.npz")
            np.savez(feeds, **_rows(arrays))
        _probe_child(path, runtime, threads, xnnpack, graph_optimization, json.dumps(dict(shapes or {})), feeds,
                     "" if int_range is None else f"{int_range[0]},{int_range[1]}")
    _passed.add(key)


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


def _probe_child(path: Path, runtime: str, threads: int, xnnpack: bool, graph_optimization: str, shapes: str,
                 feeds: str, int_range: str) -> None:
    cmd = [sys.executable, "-m", CHILD_MODULE, runtime, str(path), str(threads), "1" if xnnpack else "0",
           graph_optimization, shapes, feeds, int_range]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    timeout = _timeout()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        msg = (
            f"{path}: {runtime} did not finish loading and running the model within {timeout:g} s "
            "(a corrupt file or a model too large for this machine; EDGEOPT_PROBE_TIMEOUT raises "
            "the limit)"
        )
        raise ModelFileError(msg) from None
    if proc.returncode < 0:
        sig = -proc.returncode
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C or kill reached the whole group
            raise KeyboardInterrupt
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        why = "ran out of memory or was killed" if sig == signal.SIGKILL else "crashed"
        msg = (
            f"{path}: {runtime} {why} ({name}) while loading or running the model in a child "
            "process; the file is corrupt or malformed, re-export it"
        )
        raise ModelFileError(msg)
    result = _result(proc.stdout)
    if result is None:
        tail = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1][:200]
        msg = (
            f"{path}: {runtime} failed while loading the model in a child process "
            f"(exit {proc.returncode}: {tail}); the file is corrupt or malformed"
        )
        raise ModelFileError(msg)
    if not result.get("ok"):
        raise _error(result)


def _result(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _error(result: dict[str, Any]) -> errors.EdgeoptError:
    cls = getattr(errors, str(result.get("class", "")), None)
    message = str(result.get("message", "")).splitlines()[0][:400] if result.get("message") else "unknown error"
    if isinstance(cls, type) and issubclass(cls, errors.InputError):
        if cls is errors.UnsupportedOpError:
            return errors.UnsupportedOpError(message, tuple(result.get("ops", ())))
        return cls(message)
    return ModelFileError(message)
