"""Which kernels are sparsified and how each maps to (positions, in, out).

The selection is the clustering one (Conv/Dense/Depthwise/Separable kernels, layers chosen by
regex with re.search); biases, BatchNormalization and other weights are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeopt.cluster.layers import select_targets
from edgeopt.sparsify.masks import KernelLayout


@dataclass(frozen=True)
class Kernel:
    layout: KernelLayout
    variable: Any  # the Keras variable, masked in place

    def numpy(self) -> np.ndarray:
        return np.asarray(self.variable.numpy())


def _layer_classes(model: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    stack = list(getattr(model, "layers", None) or [])
    while stack:
        lay = stack.pop()
        out.setdefault(lay.name, type(lay).__name__)
        stack.extend(getattr(lay, "layers", None) or [])
    return out


def layout_of(layer: str, weight: str, shape: tuple[int, ...], layer_class: str) -> KernelLayout:
    if weight == "depthwise_kernel" or layer_class.startswith("DepthwiseConv"):
        return KernelLayout(layer, weight, shape, in_axis=None, out_axis=-1)
    if "Transpose" in layer_class:  # ConvNDTranspose kernels are (..., out, in)
        return KernelLayout(layer, weight, shape, in_axis=-1, out_axis=-2)
    return KernelLayout(layer, weight, shape, in_axis=-2, out_axis=-1)


def select_kernels(model: Any, pattern: str | None) -> tuple[tuple[Kernel, ...], tuple[str, ...]]:
    """Kernels of the layers whose name matches `pattern` (all prunable ones if None), and warnings."""
    targets, warnings = select_targets(model, pattern)
    classes = _layer_classes(model)
    kernels = tuple(Kernel(layout_of(t.layer, t.weight, tuple(int(d) for d in t.variable.shape), classes.get(t.layer, "")),
                           t.variable) for t in targets)
    return kernels, tuple(w.replace("clustered", "sparsified").replace("cluster", "sparsify") for w in warnings)
