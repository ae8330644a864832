"""Prune a digits classifier to half its MACs, fine-tune, stay within 1 point of the unpruned accuracy."""

import numpy as np
import pytest

from edgeopt.prune import PruneSpec, prune_model
from edgeopt.prune.finetune import finetune
from edgeopt.validate.accuracy import keras_top1

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def digits(keras):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.kron(d.images / 16.0, np.ones((2, 2)))[..., None].astype("float32")  # 8x8 -> 16x16
    y = d.target.astype("int64")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def trained(keras, digits):
    L = keras.layers
    keras.utils.set_random_seed(0)
    x_tr, _, y_tr, _ = digits
    i = keras.Input((16, 16, 1))
    x = L.Conv2D(16, 3, padding="same", name="c1")(i)
    x = L.BatchNormalization(momentum=0.8, name="bn1")(x)
    x = L.ReLU()(x)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(32, 3, padding="same", name="c2")(x)
    x = L.BatchNormalization(momentum=0.8, name="bn2")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(32, 3, padding="same", name="c3", activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    o = L.Dense(10, activation="softmax", name="out")(x)
    model = keras.Model(i, o)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  steps_per_execution=8)
    model.fit(x_tr, y_tr, epochs=12, batch_size=64, verbose=0)
    return model


def test_half_macs_then_finetune_keeps_accuracy(keras, digits, trained):
    x_tr, x_te, y_tr, y_te = digits
    base = keras_top1(trained, x_te, y_te)
    assert base > 0.9
    result = prune_model(trained, PruneSpec(macs_reduction=0.5, criterion="bn-scale"))
    assert result.macs_reduction >= 0.5
    tuned = finetune(result.model, x_tr, y_tr, epochs=8, batch_size=64, patience=3, learning_rate=1e-3,
                     eval_x=x_te, eval_y=y_te, seed=0)
    assert tuned.model is result.model and 1 <= tuned.epochs_run <= 8
    assert tuned.accuracy_after >= base - 1.0, (base, tuned.accuracy_before, tuned.accuracy_after)
