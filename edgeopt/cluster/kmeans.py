"""1-D k-means on a weight tensor, in numpy, deterministic for a seed.

Lloyd iterations on the sorted values: with centroids kept sorted, assignment is a
`searchsorted` on the midpoints, so one iteration is O(n log k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.vocabulary import ClusterInit

Init = ClusterInit  # the closed set the profile and `edgeopt cluster --init` name


@dataclass(frozen=True)
class Codebook:
    centroids: np.ndarray  # (k,) float32, sorted ascending
    indices: np.ndarray  # same shape as the weights, int32 in [0, k)
    iterations: int

    def weights(self) -> np.ndarray:
        return self.centroids[self.indices]


def _linear(v: np.ndarray, k: int) -> np.ndarray:
    return np.linspace(float(v.min()), float(v.max()), k)


def _kmeans_pp(v: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    uniq = np.unique(v)
    centers = [float(rng.choice(uniq))]
    d2 = (uniq - centers[0]) ** 2
    for _ in range(1, k):
        total = float(d2.sum())
        if total == 0.0:
            break
        c = float(uniq[rng.choice(uniq.size, p=d2 / total)])
        centers.append(c)
        d2 = np.minimum(d2, (uniq - c) ** 2)
    return np.sort(np.asarray(centers))


def _assign(v: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    mids = (centroids[1:] + centroids[:-1]) / 2.0
    return np.searchsorted(mids, v, side="left").astype(np.int32)


def kmeans_1d(weights: np.ndarray, k: int, init: Init = Init.LINEAR, seed: int = 0,
              max_iter: int = 100, tol: float = 1e-7) -> Codebook:
    """Cluster the values of `weights` into at most `k` shared values (fewer if it has fewer distinct values)."""
    if k < 2:
        msg = f"k must be >= 2, got {k}"
        raise ValueError(msg)
    v = np.asarray(weights, dtype=np.float64).ravel()
    if v.size == 0:
        msg = "cannot cluster an empty tensor"
        raise ValueError(msg)
    uniq = np.unique(v)
    if uniq.size <= k:  # already shared: every distinct value is its own centroid
        c = uniq
        return Codebook(c.astype(np.float32), _assign(v, c).reshape(np.shape(weights)), 0)
    rng = np.random.default_rng(seed)
    c = _linear(v, k) if Init(init) is Init.LINEAR else _kmeans_pp(v, k, rng)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        idx = _assign(v, c)
        counts = np.bincount(idx, minlength=c.size)
        sums = np.bincount(idx, weights=v, minlength=c.size)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        # an empty cluster takes the value farthest from its centroid, so k stays k
        for j in np.flatnonzero(counts == 0):
            far = int(np.argmax(np.abs(v - new[idx])))
            new[j] = v[far]
            idx[far] = j
        new = np.sort(new)
        shift = float(np.max(np.abs(new - c)))
        c = new
        if shift <= tol * max(1.0, float(np.abs(v).max())):
            break
    idx = _assign(v, c)
    return Codebook(c.astype(np.float32), idx.reshape(np.shape(weights)), it)
