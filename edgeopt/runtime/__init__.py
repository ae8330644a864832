"""Runtimes that execute artifacts: LiteRT, onnxruntime (and TFLM in edgeopt.mcu).

Runtime-only: nothing here imports TensorFlow unless LiteRT and tflite_runtime
are both missing and tf.lite is the last fallback.
"""

from edgeopt.runtime.base import Runner, RunnerOptions, RuntimeName, TensorInfo
from edgeopt.runtime.registry import open_runner, runtime_for

__all__ = ["Runner", "RunnerOptions", "RuntimeName", "TensorInfo", "open_runner", "runtime_for"]
