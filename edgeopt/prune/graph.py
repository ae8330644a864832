"""Dependency graph: which layers' channels must shrink together.

Every tensor's channel (last) axis is described by a `Layout`: a sequence of segments, each a slice
of one channel group, repeated over `spatial` positions once a feature map is flattened. Producers
(Conv, Dense, SeparableConv) open a new group; channel-wise layers (BN, LayerNorm, LayerScale, depthwise
and grouped convs) and pass-through layers carry the layout; element-wise merges unite the operands'
groups; Concatenate joins layouts with offsets; Flatten multiplies positions. Element-wise Keras ops
(`x + 3.0`, `ops.relu6`, `a * b`) pass or merge like layers when their constants broadcast over the
channels. A grouped conv makes its group prune in whole convolution groups (`Group.unit`). Anything
else blocks the groups it touches, naming the layer or op and why, and so do the model inputs and
outputs. Blocked groups are never pruned.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from edgeopt.analysis.keras_graph import FlatGraph, trace
from edgeopt.prune.rules import Axis, PruneRule, Role


class Kind(StrEnum):
    """Structural (parameter-free) layer kinds the graph understands."""

    PASS = "pass"
    MERGE = "merge"
    ELEMENTWISE = "elementwise"  # a Keras op: tensors merge, constants must broadcast over the channels
    CONCAT = "concat"
    FLATTEN = "flatten"
    RESHAPE = "reshape"


@dataclass(frozen=True)
class Member:
    """One place a group's channels live: a layer's out/in/channel axis at `offset`.

    For an input axis fed by a flattened map, channel i of the group sits at
    p * stride + offset + i for each position p < spatial.
    """

    layer: str
    axis: Axis
    offset: int = 0
    spatial: int = 1
    stride: int = 0
    layer_id: int = field(default=0, compare=False, repr=False)

    def indices(self, n: int) -> np.ndarray:
        """(spatial, n) indices into the layer's axis."""
        p = np.arange(self.spatial)[:, None] * self.stride
        return p + self.offset + np.arange(n)[None, :]


@dataclass(frozen=True)
class Group:
    index: int
    size: int
    members: tuple[Member, ...]
    reasons: tuple[str, ...]  # why it is blocked; empty if prunable
    unit: int = 1  # channels go in aligned blocks of this many (whole groups of a grouped conv)

    @property
    def prunable(self) -> bool:
        return not self.reasons and any(m.axis == Axis.OUT for m in self.members)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.layer for m in self.members))


@dataclass(frozen=True)
class Layout:
    segments: tuple[tuple[int, int], ...]  # (group, channels)
    spatial: int = 1

    @property
    def channels(self) -> int:
        return sum(n for _, n in self.segments)

    def dim(self, counts: Mapping[int, int] | None = None) -> int:
        """Size of the last axis with `counts` (group -> kept channels) applied."""
        counts = counts or {}
        return self.spatial * sum(counts.get(g, n) for g, n in self.segments)


@dataclass(frozen=True)
class Plan:
    """How surgery slices one parametric layer."""

    rule: PruneRule
    in_layout: Layout
    out_layout: Layout


@dataclass(frozen=True)
class DependencyGraph:
    model_name: str
    flat: FlatGraph
    groups: tuple[Group, ...]
    layouts: dict[int, Layout]  # tensor key -> layout
    plans: dict[int, Plan]  # id(layer) -> plan, for every prunable-type layer not blocked
    layers: dict[int, Any]  # id(layer) -> layer
    unprunable: tuple[tuple[str, str], ...]  # (layer name, reason)

    def assemble(self, layout: Layout, keep: Mapping[int, np.ndarray]) -> np.ndarray | None:
        """Kept indices along an axis with `layout`, or None when nothing in it changes."""
        if not any(g in keep for g, _ in layout.segments):
            return None
        total = layout.channels
        parts, offset = [], 0
        for g, n in layout.segments:
            parts.append(offset + (np.asarray(keep[g]) if g in keep else np.arange(n)))
            offset += n
        one = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return (np.arange(layout.spatial)[:, None] * total + one[None, :]).reshape(-1).astype(np.int64)


# --- building ----------------------------------------------------------------------------------------

@functools.cache
def _structural() -> dict[type, Kind]:
    import keras

    L = keras.layers
    table: dict[type, Kind] = {}
    pass_names = ["Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout1D",
                  "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                  "ActivityRegularization", "Identity", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
                  "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
                  "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                  "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                  "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"]
    for name in pass_names:
        if hasattr(L, name):
            table[getattr(L, name)] = Kind.PASS
    for name in ["Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"]:
        table[getattr(L, name)] = Kind.MERGE
    table[L.Concatenate] = Kind.CONCAT
    table[L.Flatten] = Kind.FLATTEN
    table[L.Reshape] = Kind.RESHAPE
    table[L.Rescaling] = Kind.PASS  # checked: scalar scale and offset only
    table.update(dict.fromkeys(_elementwise_ops(), Kind.ELEMENTWISE))
    return table


# Element-wise Keras ops as they appear as nodes of a Keras 3 functional graph (`x + 3.0` is a
# keras.src.ops.numpy.Add operation, not keras.layers.Add). Unary ones keep the channels; binary ones
# unite their tensor operands like keras.layers.Add and take constants that broadcast over channels.
_NN_OPS = ["Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Gelu", "Elu", "Selu", "Celu", "LeakyRelu",
           "Softplus", "Softsign", "HardTanh", "HardShrink", "SoftShrink", "TanhShrink", "LogSigmoid", "SparsePlus",
           "SparseSigmoid", "Squareplus", "Threshold"]
_NUMPY_OPS = ["Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power", "Abs", "Absolute",
              "Negative", "Square", "Sqrt", "Exp", "Expm1", "Log", "Log1p", "Tanh", "Sin", "Cos", "Sign", "Clip",
              "Round", "Floor", "Ceil", "Reciprocal", "Fabs", "Cbrt", "Trunc", "Copy"]


def _elementwise_ops() -> list[type]:
    from keras.src.ops import nn, numpy

    return [getattr(mod, name) for mod, names in ((nn, _NN_OPS), (numpy, _NUMPY_OPS)) for name in names
            if hasattr(mod, name)]


class _Builder:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.members: list[list[Member]] = []
        self.reasons: list[list[str]] = []
        self.unit: list[int] = []

    def new(self, size: int, reason: str | None = None) -> int:
        g = len(self.parent)
        self.parent.append(g)
        self.size.append(size)
        self.members.append([])
        self.reasons.append([reason] if reason else [])
        self.unit.append(1)
        return g

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        self.parent[b] = a
        self.members[a] += self.members[b]
        self.reasons[a] += self.reasons[b]
        self.unit[a] = math.lcm(self.unit[a], self.unit[b])

    def require_unit(self, g: int, unit: int) -> None:
        r = self.find(g)
        self.unit[r] = math.lcm(self.unit[r], unit)

    def add(self, g: int, member: Member) -> None:
        self.members[self.find(g)].append(member)

    def block(self, layout: Layout, reason: str) -> None:
        for g, _ in layout.segments:
            r = self.reasons[self.find(g)]
            if reason not in r:
                r.append(reason)


def build_graph(model: Any, rules: Mapping[type, PruneRule]) -> DependencyGraph:
    """Trace `model` and group its channels; `rules` is the surgery table (see rules.default_rules)."""
    flat = trace(model)
    b = _Builder()
    layouts: dict[int, Layout] = {}
    plans: dict[int, tuple[Any, PruneRule, Layout, Layout]] = {}
    layers: dict[int, Any] = {}
    unprunable: list[tuple[str, str]] = []
    for key in flat.inputs:
        layouts[key] = Layout(((b.new(_last(flat.shape(key)), "model input"), _last(flat.shape(key))),))
    calls = flat.call_counts()
    structural = _structural()
    for node in flat.nodes:
        layer = node.layer
        layers[id(layer)] = layer
        ins = [layouts[k] for k in node.inputs]
        in_shapes = [flat.shape(k) for k in node.inputs]
        out_shapes = [flat.shape(k) for k in node.outputs]
        cls = type(layer)
        reason = _generic_reason(layer, node, in_shapes, out_shapes, calls)
        if reason is None and cls in rules:
            rule = rules[cls]
            if rule.specialise is not None:
                rule = rule.specialise(layer)
            reason = rule.check(layer, in_shapes[0])
            if reason is None:
                reason = _apply_rule(b, layer, rule, ins[0], in_shapes[0], out_shapes[0], node, layouts, plans)
        elif reason is None and cls in structural:
            reason = _apply_structural(b, structural[cls], ins, in_shapes, out_shapes, node, layouts)
        elif reason is None:
            reason = _unknown(layer)
        if reason is not None:
            if not reason.startswith("unknown "):
                reason = f"{_what(layer)}: {reason}"  # name the class: keras op Add is not keras.layers.Add
            unprunable.append((layer.name, reason))
            text = f"{layer.name}: {reason}"
            for lay in ins:
                b.block(lay, text)
            for k, shape in zip(node.outputs, out_shapes, strict=True):
                n = _last(shape)
                layouts[k] = Layout(((b.new(n, text), n),))
    for k in flat.outputs:
        b.block(layouts[k], "model output")
    return _finish(model.name, flat, b, layouts, plans, layers, unprunable)


def _is_op(layer: Any) -> bool:
    import keras

    return not isinstance(layer, keras.layers.Layer)


def _what(layer: Any) -> str:
    """`layer Conv2D` or `keras op Multiply` (a keras.src.ops operation in the graph, not a keras.layers layer)."""
    return f"{'keras op' if _is_op(layer) else 'layer'} {type(layer).__name__}"


def _unknown(layer: Any) -> str:
    name = type(layer).__name__
    if _is_op(layer):
        return (f"unknown keras op {name} (keras.ops.{layer.name.rstrip('0123456789').rstrip('_')}): "
                "not an element-wise op the pruner can follow channels through")
    return (f"unknown layer type {name} ({type(layer).__module__}): no pruning rule for it; "
            "register one with edgeopt.prune.rules.register_rule")


def _last(shape: tuple) -> int:
    return int(shape[-1]) if shape and shape[-1] is not None else 0


def _generic_reason(layer: Any, node: Any, in_shapes: list, out_shapes: list, calls: dict[int, int]) -> str | None:
    if calls[id(layer)] > 1:
        return "layer is shared (called more than once)"
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return "channels_first data format"
    if not in_shapes or not out_shapes or any(len(s) < 2 or s[-1] is None for s in in_shapes + out_shapes):
        return "input or output without a known channel axis"
    return None


def _apply_rule(b: _Builder, layer: Any, rule: PruneRule, lay: Layout, in_shape: tuple, out_shape: tuple,
                node: Any, layouts: dict[int, Layout], plans: dict) -> str | None:
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return "called with several tensors"
    if lay.dim() != in_shape[-1]:
        return "input channels do not match the traced layout"
    if lay.spatial > 1 and not (rule.accepts_flat and len(in_shape) == 2):
        return "consumes a flattened feature map"
    name = layer.name
    unit = rule.unit(layer, in_shape)
    if unit > 1:
        sizes = [n for _, n in lay.segments]
        if any(n % unit for n in sizes):
            return (f"prunes in whole blocks of {unit} channels (one convolution group each), but its input joins "
                    f"channel groups of {sizes} channels that do not split into such blocks")
        for g, _n in lay.segments:
            b.require_unit(g, unit)
    if rule.role == Role.PRODUCER:
        total = lay.channels
        for off, (g, _n) in zip(_offsets(lay), lay.segments, strict=True):
            b.add(g, Member(name, Axis.IN, off, lay.spatial, total, id(layer)))
        n_out = _last(out_shape)
        g = b.new(n_out)
        b.add(g, Member(name, Axis.OUT, 0, 1, n_out, id(layer)))
        out = Layout(((g, n_out),))
    else:
        if _last(out_shape) != lay.dim():
            return "channel-wise layer changes the channel count"
        for off, (g, _n) in zip(_offsets(lay), lay.segments, strict=True):
            b.add(g, Member(name, Axis.CHANNEL, off, 1, lay.channels, id(layer)))
        out = lay
    layouts[node.outputs[0]] = out
    plans[id(layer)] = (layer, rule, lay, out)
    return None


def _offsets(lay: Layout) -> list[int]:
    offs, o = [], 0
    for _, n in lay.segments:
        offs.append(o)
        o += n
    return offs


def _apply_structural(b: _Builder, kind: Kind, ins: list[Layout], in_shapes: list, out_shapes: list,
                      node: Any, layouts: dict[int, Layout]) -> str | None:
    if len(out_shapes) != 1:
        return "several outputs"
    out_key, out_shape = node.outputs[0], out_shapes[0]
    if any(lay.dim() != s[-1] for lay, s in zip(ins, in_shapes, strict=True)):
        return "input channels do not match the traced layout"
    if kind == Kind.ELEMENTWISE:
        reason = _constants_reason(node)
        return reason or _merge(b, ins, in_shapes, out_shape, out_key, layouts)
    if kind == Kind.PASS:
        reason = _pass_reason(node.layer)
        if reason is not None:
            return reason
        if len(ins) != 1 or out_shape[-1] != in_shapes[0][-1]:
            return "changes the channel axis"
        if ins[0].spatial > 1 and len(out_shape) != 2:
            return "reshapes a flattened feature map"
        layouts[out_key] = ins[0]
        return None
    if kind == Kind.MERGE or (kind == Kind.CONCAT and not _concat_on_channels(node.layer, out_shape)):
        return _merge(b, ins, in_shapes, out_shape, out_key, layouts)
    if kind == Kind.CONCAT:
        if any(lay.spatial > 1 for lay in ins):
            return "concatenates flattened feature maps"
        layouts[out_key] = Layout(tuple(seg for lay in ins for seg in lay.segments))
        return None
    lay, in_shape = ins[0], in_shapes[0]
    if lay.spatial > 1:
        return "reshapes a flattened feature map"
    if kind == Kind.RESHAPE and out_shape[-1] == in_shape[-1]:
        layouts[out_key] = lay
        return None
    if len(out_shape) == 2 and all(d is not None for d in in_shape[1:]):
        positions = math.prod(int(d) for d in in_shape[1:-1])
        if positions * lay.channels == out_shape[-1]:
            layouts[out_key] = Layout(lay.segments, positions)
            return None
    return "reshape that moves channels" if kind == Kind.RESHAPE else "flattens an unknown shape"


def _broadcasts(value: Any) -> bool:
    """A constant that broadcasts over the channel axis (a scalar or a trailing axis of 1) needs no slicing."""
    shape = tuple(getattr(value, "shape", np.shape(value)))
    return not shape or shape[-1] == 1


def _constants_reason(node: Any) -> str | None:
    import keras

    args = keras.tree.flatten((node.arguments.args, node.arguments.kwargs))
    for v in args:
        if v is None or isinstance(v, (str, bool, keras.KerasTensor)):
            continue
        if not _broadcasts(v):
            shape = tuple(getattr(v, "shape", np.shape(v)))
            return (f"combines the channels with a constant of shape {shape}, which would have to be sliced "
                    "with them (make it a weight of a layer, or ignore this group)")
    return None


def _pass_reason(layer: Any) -> str | None:
    import keras

    if isinstance(layer, keras.layers.Rescaling) and not (_broadcasts(layer.scale) and _broadcasts(layer.offset)):
        return "per-channel scale or offset (not sliced with the channels)"
    return None


def _concat_on_channels(layer: Any, out_shape: tuple) -> bool:
    axis = layer.axis
    return axis == -1 or axis == len(out_shape) - 1


def _merge(b: _Builder, ins: list[Layout], in_shapes: list, out_shape: tuple, out_key: int,
           layouts: dict[int, Layout]) -> str | None:
    coupled = [lay for lay, s in zip(ins, in_shapes, strict=True) if not (s[-1] == 1 and out_shape[-1] != 1)]
    if not coupled:
        return "broadcasts every operand"
    first = coupled[0]
    shape_of = [(tuple(n for _, n in lay.segments), lay.spatial) for lay in coupled]
    if any(s != shape_of[0] for s in shape_of) or first.dim() != out_shape[-1]:
        return "merges differently split channels"
    for lay in coupled[1:]:
        for (g0, _), (g1, _) in zip(first.segments, lay.segments, strict=True):
            b.union(g0, g1)
    layouts[out_key] = first
    return None


def _finish(name: str, flat: FlatGraph, b: _Builder, layouts: dict[int, Layout], plans: dict,
            layers: dict[int, Any], unprunable: list[tuple[str, str]]) -> DependencyGraph:
    roots = sorted({b.find(g) for g in range(len(b.parent))})
    index = {r: i for i, r in enumerate(roots)}

    def remap(lay: Layout) -> Layout:
        return Layout(tuple((index[b.find(g)], n) for g, n in lay.segments), lay.spatial)

    groups = tuple(Group(index[r], b.size[r], tuple(b.members[r]), tuple(dict.fromkeys(b.reasons[r])), b.unit[r])
                   for r in roots)
    new_layouts = {k: remap(v) for k, v in layouts.items()}
    new_plans = {lid: Plan(rule, remap(i), remap(o)) for lid, (_, rule, i, o) in plans.items()}
    return DependencyGraph(name, flat, groups, new_layouts, new_plans, layers, tuple(unprunable))
