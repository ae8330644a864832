"""Fine-tune shared centroids with fixed cluster assignments.

Each step takes the gradient of the loss with respect to every clustered kernel,
sums it per cluster (`unsorted_segment_sum` over the fixed indices), updates the
centroid vector with Adam and writes the kernel back as `centroids[indices]`.
Only centroids move; biases, BatchNormalization (run in inference mode) and
unclustered layers stay as they are, and no weight ever changes cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeopt.errors import DataError


@dataclass(frozen=True)
class SharedWeight:
    variable: Any  # the Keras kernel variable
    centroids: np.ndarray  # (k,) float32
    indices: np.ndarray  # kernel-shaped int32


def outputs_are_probabilities(model: Any, x: np.ndarray) -> bool:
    p = np.asarray(model(x[:16], training=False))
    return bool(p.ndim == 2 and p.shape[1] > 1 and p.min() >= 0.0 and np.allclose(p.sum(axis=1), 1.0, atol=1e-3))


def pick_loss(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """The model's compiled loss, else cross-entropy matching the labels and the output kind."""
    import keras

    compiled = getattr(model, "loss", None)
    if compiled:
        return keras.losses.get(compiled) if isinstance(compiled, str) else compiled
    probs = outputs_are_probabilities(model, x)
    if y.dtype.kind in "iu":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    out = model.outputs[0].shape
    if y.ndim == 2 and out[-1] == y.shape[1]:
        return keras.losses.CategoricalCrossentropy(from_logits=not probs)
    msg = (
        "fine-tuning data: labels y must be integer classes or one-hot rows matching the output "
        "(or compile the model with a loss before saving)"
    )
    raise DataError(msg)


def finetune_centroids(model: Any, shared: list[SharedWeight], x: np.ndarray, y: np.ndarray, epochs: int,
                       learning_rate: float = 1e-4, batch_size: int = 32, seed: int = 0) -> tuple[
                           tuple[np.ndarray, ...], tuple[float, ...]]:
    """Train the centroids for `epochs`; return the final centroids and the mean loss per epoch."""
    import tensorflow as tf

    loss_fn = pick_loss(model, x, y)
    variables = [s.variable for s in shared]
    idx = [tf.constant(s.indices.reshape(-1), tf.int32) for s in shared]
    ks = [int(s.centroids.size) for s in shared]
    cents = [tf.Variable(s.centroids.astype(np.float32)) for s in shared]
    m1 = [tf.Variable(tf.zeros_like(c)) for c in cents]
    m2 = [tf.Variable(tf.zeros_like(c)) for c in cents]
    t = tf.Variable(0.0)
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, float(learning_rate)

    @tf.function(reduce_retracing=True)
    def step(xb: Any, yb: Any) -> Any:
        with tf.GradientTape() as tape:
            pred = model(xb, training=False)
            loss = tf.reduce_mean(loss_fn(yb, pred))
        grads = tape.gradient(loss, variables)
        t.assign_add(1.0)
        for v, g, ix, k, c, a, b in zip(variables, grads, idx, ks, cents, m1, m2, strict=True):
            if g is None:
                continue
            gc = tf.math.unsorted_segment_sum(tf.reshape(tf.convert_to_tensor(g), [-1]), ix, k)
            a.assign(b1 * a + (1.0 - b1) * gc)
            b.assign(b2 * b + (1.0 - b2) * gc * gc)
            ahat = a / (1.0 - tf.pow(b1, t))
            bhat = b / (1.0 - tf.pow(b2, t))
            c.assign_sub(lr * ahat / (tf.sqrt(bhat) + eps))
            v.assign(tf.reshape(tf.gather(c, ix), tf.shape(v)))
        return loss

    rng = np.random.default_rng(seed)
    history = []
    n = int(x.shape[0])
    yy = y.astype(np.int32) if y.dtype.kind in "iu" else y.astype(np.float32)
    for _ in range(epochs):
        order = rng.permutation(n)
        losses = []
        for i in range(0, n, batch_size):
            sel = order[i : i + batch_size]
            losses.append(float(step(tf.constant(x[sel]), tf.constant(yy[sel]))))
        history.append(float(np.mean(losses)))
    for v, c, ix in zip(variables, cents, idx, strict=True):  # write back exactly centroids[idx]
        v.assign(tf.reshape(tf.gather(c, ix), tuple(v.shape)))
    return tuple(c.numpy() for c in cents), tuple(history)
