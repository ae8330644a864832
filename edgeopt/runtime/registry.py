"""Explicit registry from artifact format to runtime backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
        raise ModelFileError(f"{path}: a {fmt} model cannot run directly; give a .tflite or .onnx artifact (edgeopt build makes one)")
    return DEFAULT_RUNTIME[fmt]


def open_runner(path: Path, options: RunnerOptions | None = None) -> Runner:
    """Open `path` (.tflite or .onnx) in its runtime with `options`."""
    path = Path(path)
    name = runtime_for(path)
    return RUNTIMES[name](path, options or RunnerOptions())
