"""Constructed models where int8 post-training quantization breaks, for the QAT tests.

Both have one activation with a heavy tail: a unit that fires, hundreds of times stronger than the
others, on ~0.5% of the samples, and that nothing downstream reads (the float model is unchanged).
Min/max calibration sees the tail and stretches the tensor's shared int8 scale until the other
units keep a handful of levels; QAT's moving-average ranges follow the typical batch instead, and
the weights train on the int8 grid.

- `dscnn_tail`: a depthwise-separable CNN on sklearn digits; depthwise channel 0 detects a rare
  bright 3x3 patch with a gain of 4000.
- `heavy_tail_mlp`: a digits MLP; hidden unit 0 reads pixel 8 (non-zero in 7 of 1400 training
  digits) with a weight of 3200.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def digits(image: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(x.shape[0])
    x, y = x[order], y[order]
    if image:
        x = x.reshape(-1, 8, 8, 1)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def dscnn_tail(gain: float = 4000.0, rare: float = 99.5) -> Any:
    """Depthwise channel 0 becomes a rare-pattern detector with a huge gain that nothing reads."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(0)
    xtr, ytr, _, _ = digits(True)
    inp = keras.Input((8, 8, 1), name="image")
    h = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inp)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(6.0, name="stem_relu")(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.ReLU(name="dw_relu")(h)
    h = L.Conv2D(16, 1, name="pw")(h)
    h = L.BatchNormalization(name="pw_bn")(h)
    h = L.ReLU(6.0, name="pw_relu")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    out = L.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="dscnn_tail")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr, ytr, epochs=20, batch_size=32, verbose=0)
    stem = keras.Model(inp, model.get_layer("stem_relu").output)
    patch = np.asarray(keras.ops.depthwise_conv(stem(xtr)[..., :1], np.ones((3, 3, 1, 1), np.float32), 1, "same"))
    threshold = float(np.percentile(patch.reshape(patch.shape[0], -1).max(axis=1), rare))
    dw, pw = model.get_layer("dw"), model.get_layer("pw")
    k, b = dw.get_weights()
    k[..., 0, 0], b[0] = gain, -gain * threshold  # fires on ~0.5% of the samples, up to hundreds
    dw.set_weights([k, b])
    k, b = pw.get_weights()
    k[:, :, 0, :] = 0.0  # ...and nothing reads it: the float model is unchanged
    pw.set_weights([k, b])
    return model


RARE_PIXEL = 8  # non-zero in 7 of the 1797 digits


def rare_first(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples where the rare pixel fires first: calibration on x[:200] then sees the tail."""
    flat = x.reshape(x.shape[0], -1)
    order = np.argsort(flat[:, RARE_PIXEL] == 0, kind="stable")
    return x[order], y[order]


def heavy_tail_mlp(tail: float = 3200.0) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    xtr, ytr, _, _ = digits(False)
    inp = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(48, activation="relu", name="hidden")(inp)
    h = keras.layers.Dense(32, activation="relu", name="mixer")(h)
    out = keras.layers.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="heavy_tail_mlp")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr, ytr, epochs=15, batch_size=32, verbose=0)
    hidden, mixer = model.get_layer("hidden"), model.get_layer("mixer")
    k, b = hidden.get_weights()
    k[:, 0], b[0] = 0.0, 0.0
    k[RARE_PIXEL, 0] = tail  # unit 0 fires only on the rare pixel, up to 400: a heavy tail
    hidden.set_weights([k, b])
    k, b = mixer.get_weights()
    k[0, :] = 0.0  # ...and nothing reads it, so the float model does not change
    mixer.set_weights([k, b])
    return model
