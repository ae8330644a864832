"""Keras 3 layers with int8 fake quantization in the forward pass (TensorFlow backend).

The fake-quant ops are TensorFlow's `FakeQuantWithMinMaxVars(PerChannel)`: their gradient is the
straight-through estimator (identity inside [min, max], zero outside), and the TFLite converter
turns them into the int8 scales of the artifact, so the ranges trained here are the ones that ship.

- `ActQuant`: per-tensor asymmetric int8 for an activation; min/max tracked as moving averages of
  the batch min/max while training (or fixed, e.g. softmax's 1/256 grid).
- `QuantConv`: Conv2D / DepthwiseConv2D / Dense with an optional BatchNormalization folded in the
  way the converter folds it (w * gamma/sqrt(var+eps), beta + (b - mean) * gamma/sqrt(var+eps)),
  then symmetric int8 weights (narrow range, per output channel or per tensor) and a fused
  ReLU/ReLU6. The output quantizer is a separate `ActQuant` after the fused activation.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

PACKAGE = "edgeopt"
MIN_RANGE = 1e-4
WARMUP = 16.0  # batches whose ranges are averaged before the moving average starts  # a range narrower than this (a constant activation) would give a zero scale


def fake_quant_weights(w: Any, axis_reduce: list[int] | None) -> Any:
    """Symmetric narrow-range int8 on `w`: per last axis when `axis_reduce` lists the other axes, else per tensor."""
    if axis_reduce is None:
        m = tf.maximum(tf.reduce_max(tf.abs(w)), 1e-8)
        return tf.quantization.fake_quant_with_min_max_vars(w, -m, m, num_bits=8, narrow_range=True)
    m = tf.maximum(tf.reduce_max(tf.abs(w), axis=axis_reduce), 1e-8)
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(w, -m, m, num_bits=8, narrow_range=True)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ActQuant(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake quantization with moving-average ranges."""

    def __init__(self, decay: float = 0.999, fixed: tuple[float, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decay = float(decay)
        self.fixed = None if fixed is None else (float(fixed[0]), float(fixed[1]))

    def build(self, input_shape: Any) -> None:
        lo, hi = self.fixed or (0.0, 0.0)
        self.range_min = self.add_weight(name="range_min", shape=(), initializer=keras.initializers.Constant(lo),
                                         trainable=False)
        self.range_max = self.add_weight(name="range_max", shape=(), initializer=keras.initializers.Constant(hi),
                                         trainable=False)
        self.seen = self.add_weight(name="seen", shape=(), initializer="zeros", trainable=False)
        self.tracking = self.add_weight(name="tracking", shape=(), initializer="ones", trainable=False)

    def call(self, x: Any, training: bool | None = None) -> Any:
        lo, hi = tf.convert_to_tensor(self.range_min), tf.convert_to_tensor(self.range_max)
        if training and self.fixed is None:
            bmin = tf.minimum(tf.reduce_min(x), 0.0)
            bmax = tf.maximum(tf.reduce_max(x), 0.0)
            # the first WARMUP batches average (so one outlier batch cannot set the start), then the moving average
            d = tf.where(self.seen < WARMUP, self.seen / (self.seen + 1.0), self.decay)
            d = d * self.tracking + (1.0 - self.tracking)  # tracking 0 = range frozen
            lo = tf.stop_gradient(d * lo + (1.0 - d) * bmin)
            hi = tf.stop_gradient(d * hi + (1.0 - d) * bmax)
            self.range_min.assign(lo)
            self.range_max.assign(hi)
            self.seen.assign_add(1.0)
        hi = tf.maximum(hi, lo + MIN_RANGE)
        return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8, narrow_range=False)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "decay": self.decay, "fixed": self.fixed}


ACTIVATIONS = ("linear", "relu", "relu6")  # what TFLite fuses into CONV_2D / DEPTHWISE / FULLY_CONNECTED / ADD


def apply_activation(x: Any, name: str) -> Any:
    if name == "relu":
        return tf.nn.relu(x)
    if name == "relu6":
        return tf.nn.relu6(x)
    return x


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantConv(keras.layers.Layer):
    """Conv2D / DepthwiseConv2D / Dense (+ folded BatchNormalization) with fake-quantized int8 weights."""

    KINDS = ("conv2d", "depthwise", "dense")

    def __init__(self, kind: str, units: int, kernel_shape: tuple[int, ...], strides: tuple[int, int] = (1, 1),
                 padding: str = "valid", dilation_rate: tuple[int, int] = (1, 1), activation: str = "linear",
                 per_channel: bool = True, bn: bool = False, bn_epsilon: float = 1e-3, bn_momentum: float = 0.99,
                 source: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in self.KINDS or activation not in ACTIVATIONS:
            msg = f"QuantConv: kind {kind!r} / activation {activation!r} unsupported"
            raise ValueError(msg)
        self.kind, self.units, self.kernel_shape = kind, int(units), tuple(int(d) for d in kernel_shape)
        self.strides, self.padding = tuple(strides), str(padding)
        self.dilation_rate, self.activation_name = tuple(dilation_rate), activation
        self.per_channel, self.bn = bool(per_channel), bool(bn)
        self.bn_epsilon, self.bn_momentum, self.source = float(bn_epsilon), float(bn_momentum), source

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_shape, initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        if self.bn:
            self.gamma = self.add_weight(name="gamma", shape=(self.units,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(self.units,), initializer="zeros")
            self.moving_mean = self.add_weight(name="moving_mean", shape=(self.units,), initializer="zeros",
                                               trainable=False)
            self.moving_variance = self.add_weight(name="moving_variance", shape=(self.units,), initializer="ones",
                                                   trainable=False)
            self.bn_frozen = self.add_weight(name="bn_frozen", shape=(), initializer="ones", trainable=False)

    def _channel_shape(self) -> tuple[int, ...]:
        """How a per-output-channel vector broadcasts against the kernel."""
        if self.kind == "depthwise":
            kh, kw, cin, mult = self.kernel_shape
            return (1, 1, cin, mult)
        return (1,) * (len(self.kernel_shape) - 1) + (self.units,)

    def _op(self, x: Any, k: Any) -> Any:
        if self.kind == "dense":
            return tf.tensordot(x, k, 1) if len(x.shape) > 2 else tf.matmul(x, k)
        if self.kind == "conv2d":
            return tf.nn.conv2d(x, k, strides=self.strides, padding=self.padding.upper(), dilations=self.dilation_rate)
        return tf.nn.depthwise_conv2d(x, k, strides=(1, *self.strides, 1), padding=self.padding.upper(),
                                      dilations=self.dilation_rate)

    export_per_tensor = False  # set by export.py around the SavedModel export of a per-channel Dense

    def _fq_kernel(self, k: Any) -> Any:
        if not self.per_channel or (self.kind == "dense" and self.export_per_tensor):
            return fake_quant_weights(k, None)  # the converter cannot take a per-channel MatMul kernel: see fc_channels.py
        if self.kind == "dense":
            return fake_quant_weights(k, [0])
        if self.kind == "depthwise":
            kh, kw, cin, mult = self.kernel_shape
            flat = tf.reshape(k, (kh, kw, 1, cin * mult))  # TFLite's depthwise channels are cin * mult
            return tf.reshape(fake_quant_weights(flat, [0, 1, 2]), self.kernel_shape)
        return fake_quant_weights(k, [0, 1, 2])

    def folded(self) -> tuple[Any, Any]:
        """Kernel and bias as the converter folds BatchNormalization into them."""
        k, b = tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.bias)
        if not self.bn:
            return k, b
        scale = self.gamma * tf.math.rsqrt(self.moving_variance + self.bn_epsilon)
        return k * tf.reshape(scale, self._channel_shape()), self.beta + (b - self.moving_mean) * scale

    def call(self, x: Any, training: bool | None = None) -> Any:
        if self.bn and training:
            self._update_bn(x)
        k, b = self.folded()
        y = tf.nn.bias_add(self._op(x, self._fq_kernel(k)), b)
        return apply_activation(y, self.activation_name)

    def _update_bn(self, x: Any) -> None:
        """Before freeze_bn_after epochs: moving statistics follow the float conv's batch statistics."""
        raw = tf.stop_gradient(self._op(x, self.kernel) + self.bias)
        mean, var = tf.nn.moments(raw, axes=list(range(len(raw.shape) - 1)))
        m = self.bn_momentum + (1.0 - self.bn_momentum) * self.bn_frozen  # frozen: momentum 1
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * mean)
        self.moving_variance.assign(m * self.moving_variance + (1.0 - m) * var)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "units": self.units, "kernel_shape": self.kernel_shape,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "activation": self.activation_name, "per_channel": self.per_channel, "bn": self.bn,
                "bn_epsilon": self.bn_epsilon, "bn_momentum": self.bn_momentum, "source": self.source}
