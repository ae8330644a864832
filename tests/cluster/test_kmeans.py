"""k-means on weight tensors: pure numpy, no TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.cluster.kmeans import Init, kmeans_1d


@pytest.mark.parametrize("init", list(Init))
def test_kmeans_shares_at_most_k_values_and_reduces_error(init: Init) -> None:
    w = np.random.default_rng(0).standard_normal((3, 3, 8, 16)).astype(np.float32)
    book = kmeans_1d(w, 16, init, seed=1)
    shared = book.weights()
    assert shared.shape == w.shape and book.indices.dtype == np.int32
    assert np.unique(shared).size <= 16
    assert np.all(np.diff(book.centroids) >= 0)
    # 16 levels on a Gaussian: Lloyd-Max reaches ~20 dB; a local optimum must come close
    assert 10 * np.log10(np.sum(w**2) / np.sum((w - shared) ** 2)) > 18


def test_kmeans_is_deterministic_for_a_seed() -> None:
    w = np.random.default_rng(3).standard_normal(2000)
    a, b = kmeans_1d(w, 8, Init.KMEANS_PP, seed=7), kmeans_1d(w, 8, Init.KMEANS_PP, seed=7)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_linear_init_keeps_the_extremes_closer() -> None:
    w = np.concatenate([np.random.default_rng(0).normal(0, 0.01, 5000), [1.0, -1.0]])
    lin = kmeans_1d(w, 16, Init.LINEAR)
    assert lin.centroids.max() > 0.5 and lin.centroids.min() < -0.5


def test_fewer_distinct_values_than_k_is_exact() -> None:
    w = np.array([0.5, -0.5, 0.5, 0.25], dtype=np.float32)
    book = kmeans_1d(w, 16)
    np.testing.assert_array_equal(book.weights(), w)


def test_k_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        kmeans_1d(np.ones(10), 1)
