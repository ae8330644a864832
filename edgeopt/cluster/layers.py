"""Which layers and which of their weights are clustered.

Kernels of Conv (1D/2D/3D, transposed), Depthwise, Separable and Dense layers are
clustered; biases, BatchNormalization and everything else are left untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgeopt.errors import InputError

KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")
CLUSTERABLE = (
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense",
)


@dataclass(frozen=True)
class Target:
    layer: str
    weight: str  # "kernel", "depthwise_kernel" or "pointwise_kernel"
    variable: Any  # the Keras variable (assigned in place)

    @property
    def size(self) -> int:
        return int(self.variable.numpy().size)


def compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None or pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        msg = f"--layers '{pattern}' is not a valid regular expression ({exc}); e.g. 'conv|dense'"
        raise InputError(msg) from None


def _walk(layer: Any) -> list[Any]:
    out = []
    for sub in getattr(layer, "layers", None) or []:
        out.append(sub)
        out.extend(_walk(sub))
    return out


def _clusterable(layer: Any) -> bool:
    import keras

    classes = tuple(getattr(keras.layers, n) for n in CLUSTERABLE if hasattr(keras.layers, n))
    return isinstance(layer, classes)


def select_targets(model: Any, pattern: str | None) -> tuple[tuple[Target, ...], tuple[str, ...]]:
    """Kernels to cluster (layers whose name matches `pattern` with re.search, all if None), and warnings."""
    rx = compile_pattern(pattern)
    layers = [lay for lay in _walk(model) if _clusterable(lay)]
    warnings: list[str] = []
    if rx is not None:
        matched = [lay for lay in layers if rx.search(lay.name)]
        if not matched:
            others = [lay.name for lay in _walk(model) if rx.search(lay.name)]
            why = f"only non-clusterable layers ({', '.join(others[:5])})" if others else "no layer"
            warnings.append(f"--layers '{pattern}' matches {why}; nothing clustered for it "
                            f"(clusterable: {', '.join(lay.name for lay in layers[:8]) or 'none'})")
        layers = matched
    elif not layers:
        warnings.append("the model has no Conv/Dense/Depthwise/Separable layer; nothing to cluster")
    targets = []
    seen: set[int] = set()
    for lay in layers:
        if id(lay) in seen:  # a shared layer is clustered once
            continue
        seen.add(id(lay))
        for w in lay.weights:
            if w.name in KERNEL_NAMES and w.trainable:
                targets.append(Target(lay.name, w.name, w))
    return tuple(targets), tuple(warnings)
