"""Per-layer params, MACs, output shape and channels of a Keras model (per single sample).

MACs: Conv = out positions * kernel size * in/groups * out; Depthwise = out positions * kernel size * channels
* multiplier; Separable = depthwise + pointwise; Dense = positions * in * out; everything else 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeopt.analysis.keras_graph import FlatGraph, trace

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class LayerStats:
    name: str
    class_name: str
    params: int
    macs: int
    output_shape: Shape  # without the batch axis, of the first call
    channels: int | None  # last axis of the output
    calls: int = 1


@dataclass(frozen=True)
class ModelStats:
    layers: tuple[LayerStats, ...]
    params: int
    macs: int

    def layer(self, name: str) -> LayerStats:
        for s in self.layers:
            if s.name == name:
                return s
        raise KeyError(name)


def _positions(shape: Shape) -> int:
    """Product of the axes between batch and channels."""
    return math.prod(int(d) for d in shape[1:-1] if d is not None)


def layer_macs(layer: Any, in_shape: Shape, out_shape: Shape, groups: int | None = None) -> int:
    """MACs of one call of `layer` mapping `in_shape` to `out_shape` (batch axis included in both).

    `groups` overrides a grouped convolution's group count (the pruner's estimate for fewer groups).
    """
    import keras

    L = keras.layers
    if len(in_shape) < 2 or in_shape[-1] is None or out_shape[-1] is None:
        return 0
    c_in, c_out = int(in_shape[-1]), int(out_shape[-1])
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        k = math.prod(layer.kernel_size)
        mid = c_in * layer.depth_multiplier
        return _positions(out_shape) * (k * mid + mid * c_out)
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return _positions(out_shape) * math.prod(layer.kernel_size) * c_out
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return _positions(out_shape) * math.prod(layer.kernel_size) * (c_in // max(1, groups or layer.groups)) * c_out
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return _positions(in_shape) * math.prod(layer.kernel_size) * c_in * c_out
    if isinstance(layer, L.Dense):
        return _positions(in_shape) * c_in * c_out
    return 0


def node_shapes(graph: FlatGraph, inputs: Sequence[int], outputs: Sequence[int]) -> tuple[Shape, Shape]:
    empty: Shape = ()
    return (graph.shape(inputs[0]) if inputs else empty, graph.shape(outputs[0]) if outputs else empty)


def keras_model_stats(model: Any, graph: FlatGraph | None = None) -> ModelStats:
    """Stats of every layer called in `model` (nested sub-models inlined; shared layers counted once)."""
    graph = graph or trace(model)
    order: list[int] = []
    acc: dict[int, dict[str, Any]] = {}
    for node in graph.nodes:
        in_shape, out_shape = node_shapes(graph, node.inputs, node.outputs)
        macs = layer_macs(node.layer, in_shape, out_shape)
        entry = acc.get(id(node.layer))
        if entry is None:
            order.append(id(node.layer))
            layer = node.layer
            params = int(layer.count_params()) if hasattr(layer, "count_params") and layer.weights else 0
            acc[id(layer)] = {"layer": layer, "macs": macs, "shape": out_shape, "params": params, "calls": 1}
        else:
            entry["macs"] += macs
            entry["calls"] += 1
    layers = []
    for key in order:
        e = acc[key]
        shape = tuple(e["shape"][1:])
        channels = int(shape[-1]) if shape and shape[-1] is not None else None
        layers.append(LayerStats(e["layer"].name, type(e["layer"]).__name__, e["params"], int(e["macs"]),
                                 shape, channels, e["calls"]))
    return ModelStats(tuple(layers), sum(s.params for s in layers), sum(s.macs for s in layers))
