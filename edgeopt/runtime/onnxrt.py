"""onnxruntime backend (CPU execution provider)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from edgeopt.errors import ModelFileError, RuntimeUnavailableError, UnsupportedOpError, first_line
from edgeopt.runtime.base import GraphOptimization, RunnerOptions, RuntimeName, TensorInfo

ORT_TYPES = {  # the onnxruntime tensor types numpy can feed, by their numpy name ("string": str/object arrays)
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool", "tensor(string)": "string",
}


def _info(arg) -> TensorInfo:  # type: ignore[no-untyped-def]
    """Other types keep onnxruntime's name ("bfloat16", "float8e4m3fn", "seq(tensor(float))"): refused when fed."""
    shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or ()))
    kind = str(arg.type)
    dtype = ORT_TYPES.get(kind) or (kind[len("tensor("):-1] if kind.startswith("tensor(") else kind)
    return TensorInfo(name=arg.name, shape=shape, dtype=dtype)


class OnnxRuntimeRunner:
    runtime = RuntimeName.ONNXRUNTIME
    implementation = "onnxruntime"
    delegate = "CPUExecutionProvider"

    def __init__(self, path: Path, options: RunnerOptions) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            msg = "onnxruntime is not installed; install it with: pip install onnxruntime"
            raise RuntimeUnavailableError(msg) from None
        self.version = ort.__version__
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.graph_optimization_level = {
            GraphOptimization.DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            GraphOptimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[options.graph_optimization]
        try:
            self._sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise _translate(path, exc) from None
        self.inputs = tuple(_info(a) for a in self._sess.get_inputs())
        self.outputs = tuple(_info(a) for a in self._sess.get_outputs())
        self._names = [i.name for i in self.inputs]
        self.input_keys = tuple(self._names)
        self.output_keys = tuple(o.name for o in self.outputs)
        self._feeds: dict[str, np.ndarray] = {}

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        return list(self._sess.run(None, dict(zip(self._names, feeds, strict=True))))

    def set_inputs(self, feeds: list[np.ndarray]) -> None:
        self._feeds = dict(zip(self._names, feeds, strict=True))
        # Bound once, so the benchmark loop calls onnxruntime's own `run` with no frame of ours.
        self.invoke = functools.partial(self._sess.run, None, self._feeds)  # type: ignore[method-assign]

    def invoke(self) -> None:
        self._sess.run(None, self._feeds)


def _translate(path: Path, exc: Exception) -> Exception:
    import re

    text = str(exc)
    m = re.search(r"Could not find an implementation for (\w+)\(", text)
    if m:
        return UnsupportedOpError(f"{path}: onnxruntime lacks op {m.group(1)}; export with a lower opset or a supported op", (m.group(1),))
    m = re.search(r"(?:Fatal error: )?([\w.]+:)?(\w+)\(-?\d+\) is not a registered function/op", text)
    if m:
        domain = (m.group(1) or "").rstrip(":")
        op = f"{domain}:{m.group(2)}" if domain else m.group(2)
        return UnsupportedOpError(f"{path}: onnxruntime lacks op {op}; export with standard ONNX ops or register the custom op library", (m.group(2),))
    return ModelFileError(f"{path}: onnxruntime cannot load the model: {first_line(exc)}")
