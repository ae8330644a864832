"""Tiny models, one per channel-coupling kind: builder -> (model, expected channels after 50% uniform pruning)."""

from __future__ import annotations

import keras
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
                                      flatten_dense, reshape, separable, conv1d, nested, custom_layer, sequential]}
