"""Per-layer-type pruning rules: how each Keras layer type is sliced, scored and re-configured.

`default_rules()` returns a fresh table (layer class -> PruneRule); register custom layer types on
that copy with `register_rule` and pass it to `prune_model(..., rules=...)`. Lookup is by exact
class, so a subclass with its own `call` is never mistaken for its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from edgeopt.errors import InputError

Weights = dict[str, np.ndarray]
Keep = np.ndarray | None


class Role(StrEnum):
    """How a parametric layer treats channels."""

    PRODUCER = "producer"  # consumes input channels, makes new output channels (Conv, Dense)
    CHANNELWISE = "channelwise"  # one parameter slice per channel, in == out (BN, depthwise)


class Axis(StrEnum):
    """Which channel axis of a layer a group member touches."""

    OUT = "out"
    IN = "in"
    CHANNEL = "channel"


@dataclass(frozen=True)
class PruneRule:
    """How to prune one layer type.

    prune(weights, in_keep, out_keep) -> sliced weights (same names); a None keep leaves that axis.
    rows(weights, axis) -> array (channels, k): the parameters of each channel, for importance.
    config(config, out_channels) -> config of the smaller layer (producers only).
    check(layer, in_shape) -> a reason string when this instance cannot be pruned, else None.
    unit(layer, in_shape) -> channels are removed in aligned blocks of this many (a grouped conv's group).
    specialise(layer) -> the rule for this instance, when one class needs two (a grouped Conv is channel-wise).
    """

    role: Role
    prune: Callable[[Weights, Keep, Keep], Weights]
    rows: Callable[[Weights, Axis], np.ndarray]
    config: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    check: Callable[[Any, tuple], str | None] = lambda layer, in_shape: None
    scale: str | None = None  # weight holding a per-channel scale (BN gamma), for Criterion.BN_SCALE
    accepts_flat: bool = False  # input may be a flattened feature map (Dense after Flatten)
    unit: Callable[[Any, tuple], int] = lambda layer, in_shape: 1
    specialise: Callable[[Any], PruneRule] | None = None


def register_rule(rules: dict[type, PruneRule], cls: type, rule: PruneRule) -> None:
    """Add `cls` to a rules table; refuses duplicates."""
    if cls in rules:
        msg = f"a pruning rule for {cls.__name__} is already registered; use another table or remove it first"
        raise InputError(msg)
    rules[cls] = rule


# --- slicing helpers -----------------------------------------------------------------------------

def _take(a: np.ndarray, keep: Keep, axis: int) -> np.ndarray:
    return a if keep is None else np.take(a, keep, axis=axis)


def _kernel_rows(w: Weights, axis: Axis, name: str = "kernel") -> np.ndarray:
    k = w[name]
    moved = np.moveaxis(k, -1 if axis == Axis.OUT else -2, 0)
    return moved.reshape(moved.shape[0], -1)


def _prune_kernel_bias(w: Weights, in_keep: Keep, out_keep: Keep) -> Weights:
    out = dict(w)
    out["kernel"] = _take(_take(w["kernel"], in_keep, -2), out_keep, -1)
    if "bias" in w:
        out["bias"] = _take(w["bias"], out_keep, 0)
    return out


def _set(key: str) -> Callable[[dict[str, Any], int], dict[str, Any]]:
    def update(config: dict[str, Any], n: int) -> dict[str, Any]:
        return {**config, key: int(n)}

    return update


def _per_group(layer: Any, in_shape: tuple) -> tuple[int, int]:
    """(input, output) channels per group of a grouped convolution."""
    g = int(layer.groups)
    return int(in_shape[-1]) // g, int(layer.filters) // g


def _grouped_check(layer: Any, in_shape: tuple) -> str | None:
    a, b = _per_group(layer, in_shape)
    if a != b:
        return (f"grouped convolution (groups={layer.groups}) maps {a} input to {b} output channels per group; "
                "whole groups are pruned only when the two counts are equal")
    return None


def _prune_grouped(w: Weights, in_keep: Keep, out_keep: Keep) -> Weights:
    """Whole groups go: the kernel's per-group input axis stays, its output axis follows the kept channels."""
    out = dict(w)
    out["kernel"] = _take(w["kernel"], in_keep, -1)
    if "bias" in w:
        out["bias"] = _take(w["bias"], in_keep, 0)
    return out


def _grouped_config(config: dict[str, Any], n: int) -> dict[str, Any]:
    per_group = int(config["filters"]) // int(config["groups"])
    return {**config, "filters": int(n), "groups": int(n) // per_group}


_GROUPED = PruneRule(Role.CHANNELWISE, _prune_grouped, lambda w, a: _kernel_rows(w, Axis.OUT), _grouped_config,
                     _grouped_check, unit=lambda layer, in_shape: _per_group(layer, in_shape)[0])


_CONV = PruneRule(Role.PRODUCER, _prune_kernel_bias, _kernel_rows, _set("filters"))


def _conv_variant(layer: Any) -> PruneRule:
    return _GROUPED if getattr(layer, "groups", 1) != 1 else _CONV


def _dense_check(layer: Any, in_shape: tuple) -> str | None:
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        return "LoRA or quantized Dense"
    return None


def _sep_mid(w: Weights, keep: Keep) -> Keep:
    """Pointwise input rows for kept depthwise input channels (channel c -> rows c*m .. c*m+m-1)."""
    if keep is None:
        return None
    m = w["depthwise_kernel"].shape[-1]
    return (np.asarray(keep)[:, None] * m + np.arange(m)[None, :]).reshape(-1)


def _prune_separable(w: Weights, in_keep: Keep, out_keep: Keep) -> Weights:
    out = dict(w)
    out["depthwise_kernel"] = _take(w["depthwise_kernel"], in_keep, -2)
    out["pointwise_kernel"] = _take(_take(w["pointwise_kernel"], _sep_mid(w, in_keep), -2), out_keep, -1)
    if "bias" in w:
        out["bias"] = _take(w["bias"], out_keep, 0)
    return out


def _separable_rows(w: Weights, axis: Axis) -> np.ndarray:
    if axis == Axis.OUT:
        return _kernel_rows(w, Axis.OUT, "pointwise_kernel")
    dw = _kernel_rows(w, Axis.IN, "depthwise_kernel")
    pw = _kernel_rows(w, Axis.IN, "pointwise_kernel")  # (c*m, out)
    return np.concatenate([dw, pw.reshape(dw.shape[0], -1)], axis=1)


def _depthwise_check(layer: Any, in_shape: tuple) -> str | None:
    if layer.depth_multiplier != 1:
        return f"depth_multiplier={layer.depth_multiplier} (only 1 is supported)"
    return None


def _prune_depthwise(w: Weights, in_keep: Keep, out_keep: Keep) -> Weights:
    out = dict(w)
    out["kernel"] = _take(w["kernel"], in_keep, -2)
    if "bias" in w:
        out["bias"] = _take(w["bias"], in_keep, 0)
    return out


def _bn_check(layer: Any, in_shape: tuple) -> str | None:
    axis = layer.axis if isinstance(layer.axis, int) else None
    if axis is None or (axis != -1 and axis != len(in_shape) - 1):
        return f"normalises axis {layer.axis}, not the channel axis"
    return None


def _prune_per_channel(w: Weights, in_keep: Keep, out_keep: Keep) -> Weights:
    return {k: _take(v, in_keep, -1) for k, v in w.items()}


def _norm_axes(axis: Any, rank: int) -> list[int] | None:
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not all(isinstance(a, int) for a in axes):
        return None
    return sorted(a % rank for a in axes)


def _ln_check(layer: Any, in_shape: tuple) -> str | None:
    if _norm_axes(layer.axis, len(in_shape)) != [len(in_shape) - 1]:
        return f"normalises axes {layer.axis}, not the channel axis alone"
    return None


def _bn_rows(w: Weights, axis: Axis) -> np.ndarray:
    if "gamma" in w:
        return w["gamma"][:, None]
    n = next(iter(w.values())).shape[0]
    return np.zeros((n, 0), dtype=np.float32)


def _prelu_check(layer: Any, in_shape: tuple) -> str | None:
    if layer.shared_axes is not None and (len(in_shape) - 1) in layer.shared_axes:
        return "PReLU shares alpha across the channel axis"
    return None


def _last_axis_rows(w: Weights, axis: Axis) -> np.ndarray:
    a = np.moveaxis(w["alpha"], -1, 0)
    return a.reshape(a.shape[0], -1)


def default_rules() -> dict[type, PruneRule]:
    """A fresh copy of the built-in table; safe to extend with `register_rule`."""
    import keras

    L = keras.layers
    conv = replace(_CONV, specialise=_conv_variant)
    dense = PruneRule(Role.PRODUCER, _prune_kernel_bias, _kernel_rows, _set("units"), _dense_check, accepts_flat=True)
    sep = PruneRule(Role.PRODUCER, _prune_separable, _separable_rows, _set("filters"))
    dw = PruneRule(Role.CHANNELWISE, _prune_depthwise, lambda w, a: _kernel_rows(w, Axis.IN), check=_depthwise_check)
    bn = PruneRule(Role.CHANNELWISE, _prune_per_channel, _bn_rows, check=_bn_check, scale="gamma")
    prelu = PruneRule(Role.CHANNELWISE, _prune_per_channel, _last_axis_rows, check=_prelu_check)
    # LayerNormalization over the channels: gamma/beta shrink with them (its statistics then cover the kept ones).
    ln = PruneRule(Role.CHANNELWISE, _prune_per_channel, _bn_rows, check=_ln_check)
    rules: dict[type, PruneRule] = {}
    for cls, rule in [(L.Conv1D, conv), (L.Conv2D, conv), (L.Conv3D, conv), (L.Dense, dense),
                      (L.SeparableConv1D, sep), (L.SeparableConv2D, sep),
                      (L.DepthwiseConv1D, dw), (L.DepthwiseConv2D, dw),
                      (L.BatchNormalization, bn), (L.PReLU, prelu), (L.LayerNormalization, ln)]:
        register_rule(rules, cls, rule)
    layer_scale = _layer_scale_class()
    if layer_scale is not None:
        register_rule(rules, layer_scale, PruneRule(Role.CHANNELWISE, _prune_per_channel, _vector_rows,
                                                    _set("projection_dim")))
    return rules


def _layer_scale_class() -> type | None:
    """keras.applications ConvNeXt's LayerScale (x * gamma, one value per channel), where this Keras has it."""
    try:
        from keras.src.applications.convnext import LayerScale
    except ImportError:
        return None
    return LayerScale


def _vector_rows(w: Weights, axis: Axis) -> np.ndarray:
    (v,) = w.values()
    return np.moveaxis(v, -1, 0).reshape(v.shape[-1], -1)


def layer_weights(layer: Any) -> Weights:
    """A layer's variables by name, as numpy arrays."""
    return {v.name: np.asarray(v) for v in layer.weights}
