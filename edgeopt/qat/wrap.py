"""Rebuild a Keras model as its fake-quantized twin, the way the int8 converter will see it.

The functional graph (nested Functional/Sequential models inlined, see analysis.keras_graph) is
walked once to plan and once to build:

- Conv2D / DepthwiseConv2D / Dense become `QuantConv`; a BatchNormalization right after one (its only
  consumer, no activation between) is folded into it, as the converter folds it.
- ReLU / ReLU6 after a Conv/Dense/Add with no other consumer fuse into it: one quantizer after the
  activation, none before (TFLite's fused activation).
- Add, Concatenate, GlobalAveragePooling2D, hard-swish and standalone activations get their own
  output quantizer; softmax / sigmoid / tanh get TFLite's fixed int8 output grid.
- Max/average pooling, Flatten, Reshape, Dropout, ZeroPadding keep their input's scale (TFLite
  requires it), so they get none. The model input gets one.
- Anything else is refused by name: never silently left in float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgeopt.errors import UnsupportedOpError


class Role(StrEnum):
    COMPUTE = "compute"  # -> QuantConv
    BN = "bn"  # folded into the QuantConv before it
    ACT = "act"  # relu / relu6 (fusable)
    REQUANT = "requant"  # layer + its own moving-average output quantizer
    FIXED = "fixed"  # layer + a fixed-range output quantizer (softmax, sigmoid, tanh)
    SAME = "same"  # keeps its input's scale, no quantizer


# TFLite's fixed int8 output grids: softmax / logistic scale 1/256 zero point -128, tanh 1/128 zero point 0.
FIXED_RANGES = {"softmax": (0.0, 255.0 / 256.0), "sigmoid": (0.0, 255.0 / 256.0), "tanh": (-1.0, 127.0 / 128.0)}
REQUANT_ACTIVATIONS = ("hard_swish", "hard_silu")


def _activation_name(layer: Any) -> str:
    act = layer.get_config().get("activation", "linear")
    name = act if isinstance(act, str) else getattr(act, "__name__", str(act))
    if isinstance(act, dict):
        name = str(act.get("config", act.get("class_name", "?")))
    return {"hard_silu": "hard_swish"}.get(name, name)


def _relu_kind(layer: Any) -> str | None:
    c = layer.get_config()
    if c.get("negative_slope", 0.0) or c.get("threshold", 0.0):
        return None
    mv = c.get("max_value")
    return "relu" if mv is None else ("relu6" if float(mv) == 6.0 else None)


def classify(layer: Any) -> tuple[Role, str] | str:
    """(role, activation name) for a supported layer, else the reason it cannot be fake-quantized."""
    import keras

    L = keras.layers
    t = type(layer)
    if t in (L.Conv2D, L.DepthwiseConv2D, L.Dense):
        c = layer.get_config()
        if c.get("data_format", "channels_last") != "channels_last":
            return "channels_first is not supported (TFLite is channels_last)"
        if t is L.Conv2D and c.get("groups", 1) != 1:
            return "grouped Conv2D has no int8 TFLite kernel"
        act = _activation_name(layer)
        if act not in ("linear", "relu", "relu6", *FIXED_RANGES, *REQUANT_ACTIVATIONS):
            return f"activation '{act}' has no int8 TFLite kernel here"
        return Role.COMPUTE, act
    if t is L.BatchNormalization:
        axis = layer.get_config().get("axis", -1)
        return (Role.BN, "linear") if axis in (-1, [-1], (-1,)) or layer.input.ndim - 1 in (
            axis if isinstance(axis, list | tuple) else [axis]) else "BatchNormalization on a non-channel axis"
    if t is L.ReLU:
        kind = _relu_kind(layer)
        return (Role.ACT, kind) if kind else "ReLU with negative_slope/threshold/max_value other than 6"
    if t is L.Activation:
        act = _activation_name(layer)
        if act in ("relu", "relu6"):
            return Role.ACT, act
        if act in FIXED_RANGES:
            return Role.FIXED, act
        if act in REQUANT_ACTIVATIONS:
            return Role.REQUANT, act
        if act == "linear":
            return Role.SAME, act
        return f"activation '{act}' has no int8 TFLite kernel here"
    if t is L.Softmax:
        return Role.FIXED, "softmax"
    if t in (L.Add, L.Concatenate, L.GlobalAveragePooling2D):
        return Role.REQUANT, "linear"
    if t in (L.MaxPooling2D, L.AveragePooling2D, L.GlobalMaxPooling2D, L.Flatten, L.Reshape, L.Dropout,
             L.SpatialDropout2D, L.ZeroPadding2D):
        return Role.SAME, "linear"
    if t is L.InputLayer:
        return Role.SAME, "linear"
    return "no int8 fake-quantization rule for this layer type"


@dataclass
class _Plan:
    role: Role
    act: str
    fold_bn: Any = None  # the BatchNormalization layer folded into this compute node
    quantize_out: bool = True  # False when a fused activation after it carries the quantizer
    alias: bool = False  # a folded BN: its output is its producer's


@dataclass(frozen=True)
class QuantizedModel:
    model: Any  # keras.Model with QuantConv / ActQuant layers
    folded_bn: tuple[str, ...]  # BatchNormalization layers folded into the Conv/Dense before them
    quantizers: int  # activation quantizers inserted (input and outputs included)
    unquantized: tuple[str, ...] = field(default=())  # outputs quantized later: by a fused ReLU or a Concatenate


def _plan(flat: Any) -> dict[int, _Plan]:
    consumers: dict[int, list[int]] = {}
    for i, node in enumerate(flat.nodes):
        for k in node.inputs:
            consumers.setdefault(k, []).append(i)
    model_outputs = set(flat.outputs)
    plans: dict[int, _Plan] = {}
    refused: list[str] = []
    for i, node in enumerate(flat.nodes):
        layer = node.layer
        got = classify(layer) if hasattr(layer, "get_config") else "a Keras op, not a layer"
        if isinstance(got, str):
            refused.append(f"{getattr(layer, 'name', '?')} ({type(layer).__name__}: {got})")
            continue
        plans[i] = _Plan(*got)
    by_index = {i: n for i, n in enumerate(flat.nodes)}

    def single_consumer(key: int) -> int | None:
        cons = consumers.get(key, [])
        return cons[0] if len(cons) == 1 and key not in model_outputs else None

    for i, p in list(plans.items()):
        if p.role is Role.BN and not p.alias:
            refused.append(f"{by_index[i].layer.name} (BatchNormalization: not right after a Conv/Dense without "
                           "activation, so the converter cannot fold it)")
        if p.role is not Role.COMPUTE:
            continue
        out = by_index[i].outputs[0]
        j = single_consumer(out)
        if p.act == "linear" and j is not None and j in plans and plans[j].role is Role.BN:
            p.fold_bn = by_index[j].layer
            plans[j].alias = True
    for i, p in plans.items():  # a fused ReLU carries the quantizer of its producer
        if p.role in (Role.COMPUTE, Role.BN) or (p.role is Role.REQUANT and type(by_index[i].layer).__name__ == "Add"):
            if p.role is Role.COMPUTE and p.fold_bn is not None:
                continue  # the BN node's output decides
            if p.role is Role.COMPUTE and p.act != "linear":
                continue
            j = single_consumer(by_index[i].outputs[0])
            if j is not None and j in plans and plans[j].role is Role.ACT:
                p.quantize_out = False
    for i, p in plans.items():  # TFLite's CONCATENATION gives its inputs its output scale: one quantizer, after it
        j = single_consumer(by_index[i].outputs[0])
        if p.role in (Role.COMPUTE, Role.REQUANT, Role.ACT) and p.act in ("linear", "relu", "relu6") and \
                j is not None and j in plans and type(by_index[j].layer).__name__ == "Concatenate":
            p.quantize_out = False
    if refused:
        msg = (
            f"cannot fake-quantize {len(refused)} layer(s): {'; '.join(refused)}; replace them "
                                 "or train without them"
        )
        raise UnsupportedOpError(msg, tuple(refused))
    return plans


def _quant_conv(layer: Any, act: str, bn: Any, per_channel: bool, name: str) -> Any:
    import keras
    import numpy as np

    from edgeopt.qat.layers import QuantConv

    c = layer.get_config()
    t = type(layer)
    kernel = np.asarray(layer.kernel)
    kind = {keras.layers.Conv2D: "conv2d", keras.layers.DepthwiseConv2D: "depthwise", keras.layers.Dense: "dense"}[t]
    units = int(kernel.shape[-1]) if kind != "depthwise" else int(kernel.shape[2] * kernel.shape[3])
    kw: dict[str, Any] = {}
    if kind != "dense":
        kw = {"strides": tuple(c["strides"]), "padding": c["padding"], "dilation_rate": tuple(c["dilation_rate"])}
    fused = act if act in ("relu", "relu6") else "linear"
    q = QuantConv(kind, units, tuple(kernel.shape), activation=fused, per_channel=per_channel, bn=bn is not None,
                  bn_epsilon=float(bn.epsilon) if bn is not None else 1e-3,
                  bn_momentum=float(bn.momentum) if bn is not None else 0.99, source=layer.name, name=name, **kw)
    return q, kernel, (np.asarray(layer.bias) if getattr(layer, "use_bias", False) else np.zeros(units, np.float32))


def _load_conv(q: Any, kernel: Any, bias: Any, bn: Any) -> None:
    import numpy as np

    q.kernel.assign(kernel)
    q.bias.assign(bias)
    if bn is not None:
        n = q.units
        q.gamma.assign(np.asarray(bn.gamma) if bn.scale else np.ones(n, np.float32))
        q.beta.assign(np.asarray(bn.beta) if bn.center else np.zeros(n, np.float32))
        q.moving_mean.assign(np.asarray(bn.moving_mean))
        q.moving_variance.assign(np.asarray(bn.moving_variance))


def quantize_model(model: Any, per_channel: bool = True, decay: float = 0.999) -> QuantizedModel:
    """The fake-quantized twin of `model` (a new model; `model` is untouched). Raises UnsupportedOpError."""
    import keras

    from edgeopt.analysis.keras_graph import trace
    from edgeopt.qat.layers import ActQuant

    flat = trace(model)
    plans = _plan(flat)
    used: set[str] = set()

    def unique(name: str) -> str:
        out, i = name, 1
        while out in used:
            out, i = f"{name}_{i}", i + 1
        used.add(out)
        return out

    count = 0

    def quant(x: Any, base: str, fixed: tuple[float, float] | None = None) -> Any:
        nonlocal count
        count += 1
        return ActQuant(decay=decay, fixed=fixed, name=unique(f"{base}_quant"))(x)

    new: dict[int, Any] = {}
    inputs = []
    for key, name in zip(flat.inputs, flat.input_names, strict=True):
        t = flat.tensors[key]
        inp = keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=unique(name))
        inputs.append(inp)
        new[key] = quant(inp, name)
    folded, fused = [], []
    for i, node in enumerate(flat.nodes):
        p, layer = plans[i], node.layer
        if p.alias:
            new[node.outputs[0]] = new[node.inputs[0]]
            folded.append(layer.name)
            continue
        tensor_dict = {raw: new[k] for raw, k in zip(node.arg_ids, node.inputs, strict=True)}
        args, kwargs = node.arguments.fill_in(tensor_dict)
        kwargs.pop("training", None)
        name = unique(layer.name)
        if p.role is Role.COMPUTE:
            q, kernel, bias = _quant_conv(layer, p.act, p.fold_bn, per_channel, name)
            y = q(args[0])
            _load_conv(q, kernel, bias, p.fold_bn)
            if p.act in FIXED_RANGES or p.act in REQUANT_ACTIVATIONS:
                y = quant(y, name + "_pre")
                y = keras.layers.Activation(p.act, name=unique(f"{name}_{p.act}"))(y)
                y = quant(y, name, FIXED_RANGES.get(p.act))
            elif _quantize_after_bn(flat, plans, _bn_output(flat, plans, i)) if p.fold_bn is not None else p.quantize_out:
                y = quant(y, name)
            else:
                fused.append(layer.name)
        else:
            config = layer.get_config()
            config["name"] = name
            y = type(layer).from_config(config)(*args, **kwargs)
            if p.role is Role.FIXED:
                y = quant(y, name, FIXED_RANGES[p.act])
            elif p.role in (Role.REQUANT, Role.ACT) and p.quantize_out:
                y = quant(y, name)
            elif not p.quantize_out:
                fused.append(layer.name)
        new[node.outputs[0]] = y
    outputs = [new[k] for k in flat.outputs]
    qmodel = keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs,
                         outputs=outputs[0] if len(outputs) == 1 else outputs, name=f"{model.name}_qat")
    return QuantizedModel(qmodel, tuple(folded), count, tuple(fused))


def _bn_output(flat: Any, plans: dict[int, _Plan], i: int) -> int:
    out = flat.nodes[i].outputs[0]
    for j, node in enumerate(flat.nodes):
        if plans[j].alias and node.inputs[0] == out:
            return int(node.outputs[0])
    msg = "folded BatchNormalization not found"
    raise AssertionError(msg)


def _quantize_after_bn(flat: Any, plans: dict[int, _Plan], bn_out: int) -> bool:
    """A folded conv+BN is quantized after the BN, unless a fused ReLU follows (then after the ReLU)."""
    cons = [j for j, n in enumerate(flat.nodes) if bn_out in n.inputs]
    if len(cons) != 1 or bn_out in flat.outputs:
        return True
    return not (plans[cons[0]].role is Role.ACT or type(flat.nodes[cons[0]].layer).__name__ == "Concatenate")


def strip_model(qmodel: Any) -> Any:
    """The float model a QAT model stands for: fake quantization removed, BatchNorm folded, trained weights.

    It is the float reference of a `.qat.keras` file (the build's float baseline); its int8 artifact
    is still made from the QAT model itself (export.py), with the trained ranges.
    """
    import keras
    import numpy as np

    from edgeopt.analysis.keras_graph import trace

    flat = trace(qmodel)
    new: dict[int, Any] = {}
    inputs = []
    for key, name in zip(flat.inputs, flat.input_names, strict=True):
        t = flat.tensors[key]
        new[key] = keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=name)
        inputs.append(new[key])
    L = keras.layers
    for node in flat.nodes:
        layer = node.layer
        kind = type(layer).__name__
        tensor_dict = {raw: new[k] for raw, k in zip(node.arg_ids, node.inputs, strict=True)}
        args, kwargs = node.arguments.fill_in(tensor_dict)
        kwargs.pop("training", None)
        if kind == "ActQuant":
            new[node.outputs[0]] = args[0]
            continue
        if kind == "QuantConv":
            k, b = (np.asarray(t) for t in layer.folded())
            act = layer.activation_name
            if layer.kind == "dense":
                plain = L.Dense(layer.units, activation=act, name=layer.name)
            elif layer.kind == "conv2d":
                plain = L.Conv2D(layer.units, layer.kernel_shape[:2], strides=layer.strides, padding=layer.padding,
                                 dilation_rate=layer.dilation_rate, activation=act, name=layer.name)
            else:
                plain = L.DepthwiseConv2D(layer.kernel_shape[:2], strides=layer.strides, padding=layer.padding,
                                          depth_multiplier=layer.kernel_shape[3], dilation_rate=layer.dilation_rate,
                                          activation=act, name=layer.name)
            y = plain(args[0])
            plain.set_weights([k, b])
        else:
            y = type(layer).from_config(layer.get_config())(*args, **kwargs)
        new[node.outputs[0]] = y
    outputs = [new[k] for k in flat.outputs]
    return keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs,
                       outputs=outputs[0] if len(outputs) == 1 else outputs, name=qmodel.name)
