"""Open a model in its native runtime in a child process first, so a crash kills the child, not us.

LiteRT and onnxruntime are C++: on some malformed files they die with SIGSEGV
instead of raising (fuzzing found LiteRT crashes on files that pass every
structural check, e.g. a RESHAPE whose shape input is marked "omitted").
`probe()` runs `open_runner` + one invoke on seeded random inputs in a fresh
`python -m edgeopt.load.probe` child with a timeout; a signal death or a hang
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
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import errors
from edgeopt.errors import ModelFileError

DEFAULT_TIMEOUT = 120.0
_passed: set[tuple[Any, ...]] = set()


def enabled() -> bool:
    return os.environ.get("EDGEOPT_PROBE", "1").strip().lower() not in ("0", "false", "no", "off")


def _timeout() -> float:
    try:
        return float(os.environ.get("EDGEOPT_PROBE_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def probe(path: Path, runtime: str, threads: int, xnnpack: bool, graph_optimization: str,
          shapes: Mapping[str, tuple[int, ...]] | None = None, data: Any = None,
          int_range: tuple[int, int] | None = None) -> None:
    """Load `path` in `runtime` and invoke once in a child; raise the child's error or ModelFileError on a crash.

    The child feeds random inputs shaped like `data` (arrays by input name or in order, first row used, as the
    benchmark feeds them) or by `shapes` (edgeopt.runtime.shapes) where the model's dimensions are symbolic.
    """
    path = Path(path)
    arrays = _arrays(data)
    layout = tuple((k, tuple(np.shape(v)), str(np.asarray(v).dtype)) for k, v in arrays.items())
    try:  # thread count does not change what loads
        key = (_digest(path), runtime, xnnpack, graph_optimization, tuple(sorted((shapes or {}).items())), layout,
               int_range)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if key in _passed:
        return
    with tempfile.TemporaryDirectory(prefix="edgeopt-probe-") as tmp:
        feeds = ""
        if arrays:
            feeds = str(Path(tmp) / "feeds.npz")
            rows: dict[str, Any] = {k: np.asarray(v)[:1] if np.ndim(v) else np.asarray(v) for k, v in arrays.items()}
            np.savez(feeds, **rows)
        _probe_child(path, runtime, threads, xnnpack, graph_optimization, json.dumps(dict(shapes or {})), feeds,
                     "" if int_range is None else f"{int_range[0]},{int_range[1]}")
    _passed.add(key)


def _arrays(data: Any) -> dict[str, Any]:
    """`data` as named arrays in order (a list becomes arr_0, arr_1, ...: matched by position)."""
    if data is None:
        return {}
    if isinstance(data, dict):
        return dict(data)
    return {f"arr_{i}": a for i, a in enumerate(data)}


def _probe_child(path: Path, runtime: str, threads: int, xnnpack: bool, graph_optimization: str, shapes: str,
                 feeds: str, int_range: str) -> None:
    cmd = [sys.executable, "-m", "edgeopt.load.probe", runtime, str(path), str(threads), "1" if xnnpack else "0",
           graph_optimization, shapes, feeds, int_range]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    timeout = _timeout()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{path}: {runtime} did not finish loading and running the model within {timeout:g} s "
                             "(a corrupt file or a model too large for this machine; EDGEOPT_PROBE_TIMEOUT raises "
                             "the limit)") from None
    if proc.returncode < 0:
        sig = -proc.returncode
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C or kill reached the whole group
            raise KeyboardInterrupt
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        why = "ran out of memory or was killed" if sig == signal.SIGKILL else "crashed"
        raise ModelFileError(f"{path}: {runtime} {why} ({name}) while loading or running the model in a child "
                             "process; the file is corrupt or malformed, re-export it")
    result = _result(proc.stdout)
    if result is None:
        tail = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1][:200]
        raise ModelFileError(f"{path}: {runtime} failed while loading the model in a child process "
                             f"(exit {proc.returncode}: {tail}); the file is corrupt or malformed")
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


# --------------------------------------------------------------------------- the child


def _child(argv: list[str]) -> int:
    """`python -m edgeopt.load.probe RUNTIME PATH THREADS XNNPACK GRAPHOPT [SHAPES_JSON FEEDS_NPZ]`: one JSON line."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # native chatter on stdout goes to stderr; stdout carries only the answer
    runtime, path, threads, xnnpack, graph_opt = argv[:5]
    shapes, feeds, ints = (argv[5], argv[6], argv[7]) if len(argv) >= 8 else ("{}", "", "")
    answer: dict[str, Any]
    try:
        _open_and_invoke(runtime, Path(path), int(threads), xnnpack == "1", graph_opt,
                         {k: tuple(v) for k, v in json.loads(shapes).items()}, feeds,
                         tuple(int(v) for v in ints.split(",")) if ints else None)  # type: ignore[arg-type]
        answer = {"ok": True}
    except errors.EdgeoptError as exc:
        answer = {"ok": False, "class": type(exc).__name__, "message": str(exc), "ops": list(getattr(exc, "ops", ()))}
    except Exception as exc:  # noqa: BLE001 - a runtime error on a loaded model means the model cannot run
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        answer = {"ok": False, "class": "ModelFileError",
                  "message": f"{path}: {runtime} cannot run the model: {first}"}
    proto.write(json.dumps(answer) + "\n")
    proto.flush()
    return 0


def _open_and_invoke(runtime: str, path: Path, threads: int, xnnpack: bool, graph_opt: str,
                     shapes: dict[str, tuple[int, ...]] | None = None, feeds: str = "",
                     int_range: tuple[int, int] | None = None) -> None:
    from edgeopt.runtime.base import GraphOptimization, RunnerOptions, RuntimeName
    from edgeopt.runtime.registry import RUNTIMES
    from edgeopt.runtime.shapes import describe_shapes, resolve_inputs, shaped_like
    from edgeopt.runtime.tensors import INT_RANGE, random_input

    options = RunnerOptions(threads=threads, xnnpack=xnnpack, graph_optimization=GraphOptimization(graph_opt))
    runner = RUNTIMES[RuntimeName(runtime)](path, options)
    rng = np.random.default_rng(0)
    if feeds:  # random values in the shapes of the caller's arrays
        with np.load(feeds, allow_pickle=False) as npz:
            infos = shaped_like(runner.inputs, {k: npz[k] for k in npz.files})
    else:
        infos = resolve_inputs(runner.inputs, shapes or {})
    try:
        runner.run([random_input(t, rng, int_range=int_range or INT_RANGE) for t in infos])
    except errors.EdgeoptError:
        raise
    except Exception as exc:  # noqa: BLE001 - say when the size we guessed may be the cause
        unsized = [t for t in infos if any(d <= 0 for d in t.shape)]
        if not unsized:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelFileError(f"{path}: {runtime} cannot run the model with its symbolic dimensions fed as 1 "
                             f"({describe_shapes(tuple(unsized))}): {first}; give the real size with --shape "
                             "NAME=1x3x640x640 or data with --input") from None


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
