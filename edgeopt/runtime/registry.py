"""Explicit registry from artifact format to runtime backend."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgeopt.runtime.probe as probe
from edgeopt.errors import ModelFileError
from edgeopt.load.formats import ModelFormat, detect_format
from edgeopt.runtime.base import Runner, RunnerOptions, RuntimeName

RunnerFactory = Callable[[Path, RunnerOptions], Runner]


def _litert(path: Path, options: RunnerOptions) -> Runner:
    from edgeopt.runtime.litert import LiteRTRunner

    return LiteRTRunner(path, options)


def _onnxruntime(path: Path, options: RunnerOptions) -> Runner:
    from edgeopt.runtime.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, options)


RUNTIMES: dict[RuntimeName, RunnerFactory] = {
    RuntimeName.LITERT: _litert,
    RuntimeName.ONNXRUNTIME: _onnxruntime,
}

DEFAULT_RUNTIME: dict[ModelFormat, RuntimeName] = {
    ModelFormat.TFLITE: RuntimeName.LITERT,
    ModelFormat.ONNX: RuntimeName.ONNXRUNTIME,
}


def runtime_for(path: Path) -> RuntimeName:
    fmt = detect_format(path)
    if fmt not in DEFAULT_RUNTIME:
        msg = f"{path}: a {fmt} model cannot run directly; give a .tflite or .onnx artifact (edgeopt build makes one)"
        raise ModelFileError(msg)
    return DEFAULT_RUNTIME[fmt]


def open_runner(path: Path, options: RunnerOptions | None = None, data: Any = None) -> Runner:
    """Open `path` (.tflite or .onnx) in its runtime with `options`, after `check_model_file` (whose probe feeds
    `data`, the caller's first sample, when given: a Resize whose scales are an input cannot run on random ones)."""
    path = Path(path)
    options = options or RunnerOptions()
    return RUNTIMES[check_model_file(path, options, data=data).runtime](path, options)


@dataclass(frozen=True)
class CheckedFile:
    runtime: RuntimeName  # the runtime to open it with
    probe: probe.ProbeRun  # how its crash probe ran


def check_model_file(path: Path, options: RunnerOptions, shapes: Mapping[str, tuple[int, ...]] | None = None,
                     data: Any = None, int_range: tuple[int, int] | None = None) -> CheckedFile:
    """Everything before the runtime opens `path` in this process: the runtime to open it with, how it was probed.

    The file is checked first (edgeopt.runtime.verify_*: structure, then semantics)
    and, unless EDGEOPT_PROBE=0, loaded and invoked once in a child process
    (edgeopt.runtime.probe), so a malformed file cannot crash this process. The probe feeds inputs shaped like
    `data` (the arrays the caller will feed) or by `shapes`, so a model that cannot run at 1x1 is not refused.
    """
    path = Path(path)
    name = runtime_for(path)
    verify_model_file(path, name)
    if not probe.enabled():
        return CheckedFile(name, probe.ProbeRun.OFF)
    return CheckedFile(name, probe.probe(path, str(name), options.threads, options.xnnpack,
                                         str(options.graph_optimization), shapes, data, int_range))


def verify_model_file(path: Path, name: RuntimeName) -> None:
    """Structural and semantic checks in Python before a native runtime reads `path`."""
    if name is RuntimeName.LITERT:
        from edgeopt.runtime.verify_tflite import verify_tflite

        verify_tflite(path)
    elif name is RuntimeName.ONNXRUNTIME:
        from edgeopt.runtime.verify_onnx import verify_onnx

        verify_onnx(path)


def import_runtime(name: RuntimeName) -> None:
    """Import the runtime's Python package now (once per process), so timing an open measures the
    interpreter / session creation, not the package import that only the first model would pay."""
    if name is RuntimeName.LITERT:
        from edgeopt.runtime.litert import _interpreter_module

        _interpreter_module()
    elif name is RuntimeName.ONNXRUNTIME:
        with contextlib.suppress(ImportError):  # opening the model raises the error that says what to install
            import onnxruntime  # noqa: F401
