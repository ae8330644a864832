"""Tiny models, one per channel-coupling kind: builder -> (model, expected channels after 50% uniform pruning)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L


@keras.saving.register_keras_serializable(package="edgeopt_tests")
class ChannelScale(L.Layer):
    """A custom per-channel scale the pruner knows nothing about."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def _head(x, units=4):
    return L.Dense(units, name="out")(x)


def conv_chain():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, activation="relu", name="c1")(i)
    x = L.Conv2D(16, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "c2": 8}


def batchnorm():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(i)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.Activation("relu")(x)
    x = L.GlobalMaxPooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "bn1": 4, "c2": 4, "bn2": 4}


def depthwise():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="c1")(i)
    x = L.ZeroPadding2D(1)(x)
    x = L.DepthwiseConv2D(3, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(8, 1, name="pw")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "dw": 4, "dw_bn": 4, "pw": 4}


def residual():
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, padding="same", name="c1")(i)
    b = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(a)
    x = L.Add(name="add1")([a, b])
    s = L.Conv2D(16, 1, strides=2, name="proj")(x)
    y = L.Conv2D(16, 3, strides=2, padding="same", name="c3")(x)
    y = L.BatchNormalization(name="bn3")(y)
    x = L.Add(name="add2")([s, y])
    x = L.ReLU()(x)
    x = L.Conv2D(8, 3, name="c4")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "c2": 4, "proj": 8, "c3": 8, "c4": 4}


def squeeze_excite():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(i)
    s = L.GlobalAveragePooling2D()(x)
    s = L.Dense(4, activation="relu", name="se1")(s)
    s = L.Dense(8, activation="sigmoid", name="se2")(s)
    s = L.Reshape((1, 1, 8))(s)
    x = L.Multiply(name="excite")([x, s])
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "se1": 2, "se2": 4, "c2": 4}


def concatenate():
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, padding="same", name="a")(i)
    b = L.Conv2D(4, 1, name="b")(i)
    x = L.Concatenate(name="cat")([a, b])
    x = L.BatchNormalization(name="cat_bn")(x)
    x = L.Conv2D(8, 3, name="c")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"a": 4, "b": 2, "cat_bn": 6, "c": 4}


def flatten_dense():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, activation="relu", name="c1")(i)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.1)(x)
    x = L.Dense(16, activation="relu", name="fc")(x)
    return keras.Model(i, _head(x)), {"c1": 4, "fc": 8}


def reshape():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(i)
    x = L.Reshape((64, 8))(x)
    x = L.Conv1D(8, 3, name="c1d")(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "c1d": 4}


def separable():
    i = keras.Input((8, 8, 3))
    x = L.SeparableConv2D(8, 3, padding="same", name="s1")(i)
    x = L.SeparableConv2D(8, 3, depth_multiplier=2, name="s2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"s1": 4, "s2": 4}


def conv1d():
    i = keras.Input((16, 3))
    x = L.Conv1D(8, 3, activation="relu", name="a")(i)
    x = L.MaxPooling1D()(x)
    x = L.Conv1D(8, 3, name="b")(x)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(i, _head(x)), {"a": 4, "b": 4}


def nested():
    inner = keras.Sequential([keras.Input((8, 8, 8)), L.Conv2D(8, 3, name="inner_c"),
                              L.BatchNormalization(name="inner_bn")], name="inner")
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(i)
    x = inner(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 4, "inner_c": 4, "inner_bn": 4}


def custom_layer():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(i)
    x = ChannelScale(name="scale")(x)
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 8, "c2": 4}


def sequential():
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(8, 3, name="c1"), L.BatchNormalization(name="bn"),
                              L.ReLU(), L.Conv2D(8, 3, name="c2"), L.Flatten(), L.Dense(4, name="out")])
    return model, {"c1": 4, "bn": 4, "c2": 4}


def hard_swish_block():
    """MobileNetV3-style: expand -> hard-swish as keras.ops arithmetic -> depthwise -> SE with hard-sigmoid -> project."""
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1, name="expand")(i)
    x = L.BatchNormalization(name="expand_bn")(x)
    x = x * keras.ops.relu6(x + 3.0) / 6.0  # Add(x, 3.0), Relu6, Multiply(x, .), TrueDivide(., 6.0) ops
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Activation("hard_swish")(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(16, 1, name="se_expand")(s)
    s = L.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)  # keras.applications' hard_sigmoid
    x = L.Multiply(name="se")([x, s])
    x = keras.ops.hard_swish(x) - np.float32(0.5)
    x = L.Conv2D(8, 1, name="project")(x)
    x = L.Activation("hard_sigmoid")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"expand": 8, "expand_bn": 8, "dw": 8, "se_reduce": 2, "se_expand": 8,
                                      "project": 4}


def layer_scale():
    """ConvNeXt-style block: grouped depthwise conv -> Dense MLP -> LayerScale -> residual Add."""
    from keras.src.applications.convnext import LayerScale

    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same", name="stem")(i)
    y = L.Conv2D(16, 3, padding="same", groups=16, name="dwg")(x)
    y = L.Dense(32, name="pw1")(y)
    y = L.Activation("gelu")(y)
    y = L.Dense(16, name="pw2")(y)
    y = LayerScale(0.5, 16, name="ls")(y)
    x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"stem": 8, "dwg": 8, "pw1": 16, "pw2": 8}


def grouped_conv():
    """A grouped conv with 4 channels per group: whole groups go, with their input and output channels."""
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1, name="c1")(i)
    x = L.Conv2D(16, 3, padding="same", groups=4, name="g")(x)
    x = L.BatchNormalization(name="g_bn")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 1, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 8, "g": 8, "g_bn": 8, "c2": 4}


def layer_norm():
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same", name="c1")(i)
    x = L.LayerNormalization(name="ln", beta_initializer="random_normal", gamma_initializer="random_normal")(x)
    x = L.Conv2D(8, 1, name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, _head(x)), {"c1": 8, "ln": 8, "c2": 4}


def zoo():
    """Residual + SE + concat + separable + depthwise + flatten, for the export tests."""
    i = keras.Input((12, 12, 3), name="input")
    x = L.Conv2D(16, 3, padding="same", name="stem")(i)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0)(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="dw_bn")(y)
    y = L.Conv2D(16, 1, name="pw")(y)
    x = L.Add()([x, y])
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(4, 1, activation="relu", name="se_r")(s)
    s = L.Conv2D(16, 1, activation="sigmoid", name="se_e")(s)
    x = L.Multiply()([x, s])
    a = L.SeparableConv2D(8, 3, strides=2, padding="same", name="sep")(x)
    b = L.Conv2D(8, 3, strides=2, padding="same", name="branch")(x)
    x = L.Concatenate()([a, b])
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    x = L.Dense(16, activation="relu", name="fc")(x)
    o = L.Dense(5, activation="softmax", name="out")(x)
    return keras.Model(i, o, name="zoo")


COUPLINGS = {f.__name__: f for f in [conv_chain, batchnorm, depthwise, residual, squeeze_excite, concatenate,
                                      flatten_dense, reshape, separable, conv1d, nested, custom_layer, sequential,
                                      hard_swish_block, layer_scale, grouped_conv]}
