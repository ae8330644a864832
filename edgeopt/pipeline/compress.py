"""Compression stages on the Keras model before conversion: prune, then cluster.

Each stage returns the model and a plain dict for the report's `stages`. The
source model is never mutated: stages work on a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeopt.data.datasets import Dataset
from edgeopt.errors import InputError
from edgeopt.profiles.schema import Profile, PruneSection


@dataclass(frozen=True)
class Compressed:
    model: Any  # keras.Model to convert
    stages: dict[str, Any]  # "prune" / "cluster" reports
    steps: tuple[dict[str, Any], ...]  # composition rows: stage, params, accuracy after


def copy_model(model: Any) -> Any:
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _top1(model: Any, evalset: Dataset | None) -> float | None:
    from edgeopt.cluster.clusterer import keras_top1

    return None if evalset is None else keras_top1(model, evalset.x, evalset.y)


def compress(model: Any, profile: Profile, train: Dataset | None, evalset: Dataset | None,
             allow_no_finetune: bool) -> Compressed:
    """Apply the profile's [prune] and [cluster] sections, in that order."""
    stages: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    prune_cfg = profile.prune
    cluster_cfg = profile.cluster
    if not _prune_enabled(prune_cfg) and cluster_cfg is None:
        return Compressed(model, stages, ())
    model = copy_model(model)
    steps.append({"stage": "float", "params": int(model.count_params()), "accuracy": _top1(model, evalset)})
    if _prune_enabled(prune_cfg):
        from edgeopt.pipeline.prune_stage import run_prune

        model, stages["prune"] = run_prune(model, prune_cfg, train, evalset, allow_no_finetune)
        steps.append({"stage": "prune", "params": int(model.count_params()), "accuracy": _top1(model, evalset)})
    if cluster_cfg is not None:
        from edgeopt.cluster.clusterer import ClusterSpec, cluster_model

        if cluster_cfg.epochs > 0 and (train is None or train.y is None):
            raise InputError("[cluster] epochs > 0 needs training data with labels; give --train data.npz (x, y)")
        spec = ClusterSpec(clusters=cluster_cfg.clusters, layers=cluster_cfg.layers, init=cluster_cfg.init,
                           epochs=cluster_cfg.epochs, learning_rate=cluster_cfg.learning_rate)
        pairs = None if train is None or train.y is None or cluster_cfg.epochs == 0 else (train.x, train.y)
        result = cluster_model(model, spec, train=pairs,
                               evaluate=None if evalset is None else (evalset.x, evalset.y), measure=True)
        stages["cluster"] = result.to_dict()
        steps.append({"stage": "cluster", "params": int(model.count_params()), "accuracy": _top1(model, evalset)})
    return Compressed(model, stages, tuple(steps))


def _prune_enabled(cfg: PruneSection) -> bool:
    return bool(cfg.ratio or cfg.macs_reduction)
