"""Weight sharing on the digits CNN: real Keras, real TFLite conversion, real fine-tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.cluster import ClusterSpec, cluster_model

pytestmark = pytest.mark.tensorflow

CLUSTERS = 16


@pytest.fixture(scope="module")
def clustered(samples: Path):
    import keras

    model_path = samples / "digits_cnn.keras"
    assert model_path.is_file(), "sample_models/digits_cnn.keras missing (run sample_models/make_samples.py)"
    model = keras.saving.load_model(model_path)
    with np.load(samples / "digits.train.npz") as z:
        train = (z["x"], z["y"])
    with np.load(samples / "digits_cnn.eval.npz") as z:
        ev = (z["x"], z["y"])
    return cluster_model(model, ClusterSpec(clusters=CLUSTERS, epochs=1, seed=0), train, ev)


def test_every_kernel_shares_at_most_k_values(clustered) -> None:
    assert {x.layer for x in clustered.layers} >= {"stem_conv", "head_conv", "probs"}
    for row in clustered.layers:
        assert row.unique_before > CLUSTERS and row.unique_after <= CLUSTERS
    for layer in clustered.model.layers:
        if type(layer).__name__ in ("Conv2D", "Dense"):
            assert np.unique(layer.kernel.numpy()).size <= CLUSTERS


def test_batchnorm_and_biases_untouched(clustered, samples: Path) -> None:
    import keras

    original = keras.saving.load_model(samples / "digits_cnn.keras")
    for a, b in zip(original.layers, clustered.model.layers, strict=True):
        if type(a).__name__ == "BatchNormalization":
            for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
                np.testing.assert_array_equal(wa, wb)
        if type(a).__name__ in ("Conv2D", "Dense") and a.use_bias:
            np.testing.assert_array_equal(a.bias.numpy(), b.bias.numpy())


def test_accuracy_within_one_point_after_finetuning(clustered) -> None:
    assert clustered.finetune_epochs == 1 and len(clustered.loss_history) == 1
    assert clustered.accuracy_before is not None and clustered.accuracy_after is not None
    assert clustered.accuracy_drop <= 1.0


def test_float_tflite_gzip_shrinks_at_least_2x(clustered) -> None:
    b, a = clustered.size_before, clustered.size_after
    assert b.tflite_bytes == a.tflite_bytes  # same float layout...
    assert clustered.tflite_gzip_ratio <= 0.5  # ...but 16 shared values compress (ratio = clustered / original)
    assert clustered.tflite_gzip_ratio == a.tflite_gzip_bytes / b.tflite_gzip_bytes
    assert clustered.keras_gzip_ratio == a.keras_gzip_bytes / b.keras_gzip_bytes <= 0.5


def test_result_serialises(clustered) -> None:
    import json

    d = clustered.to_dict()
    assert d["spec"]["init"] == "linear" and "model" not in d
    json.dumps(d)
