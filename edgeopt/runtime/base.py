"""The runner interface every runtime backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgeopt.errors import InputError
from edgeopt.vocabulary import GraphOptimization, RuntimeName

__all__ = ["MAX_THREADS", "GraphOptimization", "Runner", "RunnerOptions", "RuntimeName", "THREADS_RULE", "TensorInfo",
           "check_threads"]

MAX_THREADS = 256
THREADS_RULE = f"threads must be from 0 (all cores) to {MAX_THREADS}"


def check_threads(n: int) -> int:
    """The one thread-count rule, for profiles, the CLI and the benchmark alike."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_THREADS:
        msg = f"{THREADS_RULE}, got {n!r}"
        raise InputError(msg)
    return n


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension
    dtype: str  # numpy dtype name
    scale: float = 0.0  # 0.0 means not quantized
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8", "int16")


@dataclass(frozen=True)
class RunnerOptions:
    threads: int = 1
    xnnpack: bool = True
    graph_optimization: GraphOptimization = GraphOptimization.ALL
    reference_kernels: bool = False  # LiteRT only: the unoptimized reference kernels (implies no XNNPACK)


class Runner(Protocol):
    runtime: RuntimeName
    implementation: str  # e.g. "ai_edge_litert", "tflite_runtime", "tf.lite"
    version: str
    delegate: str  # "xnnpack", "none", "CPUExecutionProvider"
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    input_keys: tuple[str, ...]  # the names the model's interface gives them (LiteRT: its signature's keys)
    output_keys: tuple[str, ...]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        """Run one inference with arrays matching `inputs`; return copies of the outputs."""
        ...

    def set_inputs(self, feeds: list[np.ndarray]) -> None:
        """Set inputs once for repeated `invoke()` calls (the benchmark loop)."""
        ...

    def invoke(self) -> None:
        """One bare inference on the inputs set by `set_inputs`; outputs stay in the runtime."""
        ...
