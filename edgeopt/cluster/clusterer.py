"""Weight sharing facade: select kernels, k-means them, optionally fine-tune the centroids, measure."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.cluster.kmeans import Init, kmeans_1d
from edgeopt.cluster.layers import compile_pattern, select_targets
from edgeopt.cluster.sizes import CompressedSize, compressed_size
from edgeopt.errors import DataError, InputError
from edgeopt.validate.accuracy import keras_top1

MAX_CLUSTERS = 65536


@dataclass(frozen=True)
class ClusterSpec:
    clusters: int = 16
    layers: str | None = None  # regex searched in layer names; None = every clusterable layer
    init: Init = Init.LINEAR
    epochs: int = 0  # centroid fine-tuning epochs (needs training data)
    learning_rate: float = 1e-4  # Adam on the centroids; small, the model is already trained
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.clusters <= MAX_CLUSTERS:
            msg = f"clusters must be between 2 and {MAX_CLUSTERS}, got {self.clusters}; 16 is a good start"
            raise InputError(msg)
        if self.epochs < 0:
            msg = f"epochs must be >= 0, got {self.epochs}"
            raise InputError(msg)
        if self.learning_rate <= 0 or self.batch_size < 1:
            msg = "learning rate must be > 0 and batch size >= 1"
            raise InputError(msg)
        try:
            object.__setattr__(self, "init", Init(self.init))
        except ValueError:
            msg = f"init must be one of {', '.join(i.value for i in Init)}, got '{self.init}'"
            raise InputError(msg) from None
        compile_pattern(self.layers)


@dataclass(frozen=True)
class LayerCluster:
    layer: str
    weight: str
    params: int
    unique_before: int
    unique_after: int


@dataclass(frozen=True)
class ClusterResult:
    spec: ClusterSpec
    layers: tuple[LayerCluster, ...]
    warnings: tuple[str, ...]
    size_before: CompressedSize | None
    size_after: CompressedSize | None
    accuracy_before: float | None  # top-1 in percent on the eval data (Keras), None without labels
    accuracy_after: float | None
    finetune_epochs: int
    loss_history: tuple[float, ...]
    model: Any = field(default=None, repr=False, compare=False)  # the clustered Keras model

    # Ratios are clustered / original (< 1 is smaller), the direction of every edgeopt ratio (optimized / baseline).
    @property
    def tflite_gzip_ratio(self) -> float | None:
        if self.size_before is None or self.size_after is None:
            return None
        return self.size_after.tflite_gzip_bytes / max(1, self.size_before.tflite_gzip_bytes)

    @property
    def keras_gzip_ratio(self) -> float | None:
        if self.size_before is None or self.size_after is None:
            return None
        return self.size_after.keras_gzip_bytes / max(1, self.size_before.keras_gzip_bytes)

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return round(self.accuracy_before - self.accuracy_after, 6)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "model"}
        d["spec"]["init"] = str(self.spec.init)
        d["tflite_gzip_ratio"] = self.tflite_gzip_ratio
        d["keras_gzip_ratio"] = self.keras_gzip_ratio
        d["accuracy_drop"] = self.accuracy_drop
        return d


def cluster_model(model: Any, spec: ClusterSpec, train: tuple[np.ndarray, np.ndarray] | None = None,
                  evaluate: tuple[np.ndarray, np.ndarray | None] | None = None, measure: bool = True) -> ClusterResult:
    """Cluster `model` in place (kernels only) and return what changed.

    `train` (x, y) enables centroid fine-tuning for `spec.epochs`; `evaluate` (x, y) adds top-1 before/after;
    `measure` adds gzip sizes of the .keras and of a float .tflite before and after.
    """
    from edgeopt.cluster.finetune import SharedWeight, finetune_centroids

    if spec.epochs > 0 and train is None:
        msg = f"fine-tuning for {spec.epochs} epoch(s) needs training data; give --finetune data.npz"
        raise InputError(msg)
    if train is not None and spec.epochs > 0 and train[1] is None:
        msg = "fine-tuning data needs labels: save it with np.savez(path, x=..., y=...)"
        raise DataError(msg)
    targets, warnings = select_targets(model, spec.layers)
    for t in targets:
        if t.size < spec.clusters:
            msg = (
                f"layer '{t.layer}' {t.weight} has {t.size} weights, fewer than --clusters {spec.clusters}; "
                             f"use fewer clusters or exclude it with --layers"
            )
            raise InputError(msg)
    acc_before = keras_top1(model, *evaluate) if evaluate is not None else None
    size_before = compressed_size(model) if measure else None

    rows, shared = [], []
    for i, t in enumerate(targets):
        w = np.asarray(t.variable.numpy())
        book = kmeans_1d(w, spec.clusters, spec.init, seed=spec.seed + i)
        t.variable.assign(book.weights().astype(w.dtype))
        shared.append(SharedWeight(t.variable, book.centroids, book.indices))
        rows.append((t, int(np.unique(w).size)))

    history: tuple[float, ...] = ()
    if spec.epochs > 0 and shared and train is not None:
        x, y = train
        assert y is not None
        _, history = finetune_centroids(model, shared, x, y, spec.epochs, spec.learning_rate, spec.batch_size, spec.seed)

    layers = tuple(LayerCluster(t.layer, t.weight, t.size, before, int(np.unique(t.variable.numpy()).size))
                   for t, before in rows)
    acc_after = keras_top1(model, *evaluate) if evaluate is not None else None
    size_after = compressed_size(model) if measure else None
    return ClusterResult(spec, layers, warnings, size_before, size_after, acc_before, acc_after,
                         spec.epochs if history else 0, history, model)


def cluster_keras_file(model_path: Path, out: Path, spec: ClusterSpec, finetune: Path | None = None,
                       eval_data: Path | None = None, unsafe_load: bool = False) -> ClusterResult:
    """Load a Keras model file, cluster it and write the clustered model to `out` (.keras) atomically; the
    model's code runs in the sandbox (the result carries no live model)."""
    from edgeopt.load.keras_job import check_keras_job
    from edgeopt.sandbox.runner import run_model_code

    check_keras_job(Path(model_path), Path(out), "clustering", {"training data": finetune, "eval data": eval_data})
    return run_model_code(  # type: ignore[no-any-return]
        "edgeopt.cluster.clusterer:cluster_keras_file_here",
        {"model_path": model_path, "out": out, "spec": spec, "finetune": finetune, "eval_data": eval_data,
         "unsafe_load": unsafe_load}, ClusterResult, out=Path(out))


def cluster_keras_file_here(model_path: Path, out: Path, spec: ClusterSpec, finetune: Path | None = None,
                            eval_data: Path | None = None, unsafe_load: bool = False) -> ClusterResult:
    """cluster_keras_file in this process (the sandbox's side)."""
    from edgeopt.atomic import write_bytes_atomic
    from edgeopt.load.keras_job import open_keras_job

    job = open_keras_job(Path(model_path), Path(out), "clustering", finetune, eval_data, unsafe_load)
    model = job.model
    train = ev = None
    if job.train is not None:
        if job.train.y is None:
            msg = f"train data {finetune} has no labels 'y'; save it with np.savez(path, x=..., y=...)"
            raise DataError(msg)
        train = (job.train.x, job.train.y)
    elif spec.epochs > 0:
        msg = f"--epochs {spec.epochs} needs training data; give --finetune data.npz"
        raise InputError(msg)
    if job.eval is not None:
        ev = (job.eval.x, job.eval.y)
    result = cluster_model(model, spec, train, ev)
    with tempfile.TemporaryDirectory(prefix="edgeopt-cl-") as tmp:
        p = Path(tmp) / "clustered.keras"
        model.save(p)
        write_bytes_atomic(Path(out), p.read_bytes())
    return replace(result, model=None)
