"""Compression stages on the Keras model before conversion: prune, then cluster.

Each stage returns the model and its frozen result for the report. The source
model is never mutated: stages work on a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgeopt.data.datasets import Dataset
from edgeopt.errors import InputError
from edgeopt.profiles.schema import Profile, PruneSection
from edgeopt.report import schema as rs

if TYPE_CHECKING:
    from edgeopt.cluster.clusterer import ClusterResult


@dataclass(frozen=True)
class Compressed:
    model: Any  # keras.Model to convert
    prune: rs.PruneStage | None
    cluster: ClusterResult | None
    steps: tuple[rs.CompositionStep, ...]  # params and top-1 after each step, from "float" on


def copy_model(model: Any) -> Any:
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _top1(model: Any, evalset: Dataset | None) -> float | None:
    from edgeopt.validate.accuracy import keras_top1

    return None if evalset is None else keras_top1(model, evalset.x, evalset.y)


def compress(model: Any, profile: Profile, train: Dataset | None, evalset: Dataset | None,
             allow_no_finetune: bool) -> Compressed:
    """Apply the profile's [prune] and [cluster] sections, in that order."""
    prune_cfg = profile.prune
    cluster_cfg = profile.cluster
    if not _prune_enabled(prune_cfg) and cluster_cfg is None:
        return Compressed(model, None, None, ())
    model = copy_model(model)
    steps = [_step("float", model, evalset)]
    pruned = clustered = None
    if _prune_enabled(prune_cfg):
        from edgeopt.pipeline.prune_stage import prune_and_finetune

        outcome = prune_and_finetune(model, prune_cfg, train, evalset, allow_no_finetune)
        model, pruned = outcome.model, outcome.report
        steps.append(_step("prune", model, evalset))
    if cluster_cfg is not None:
        from edgeopt.cluster.clusterer import ClusterSpec, cluster_model

        if cluster_cfg.epochs > 0 and (train is None or train.y is None):
            raise InputError("[cluster] epochs > 0 needs training data with labels; give --train data.npz (x, y)")
        spec = ClusterSpec(clusters=cluster_cfg.clusters, layers=cluster_cfg.layers, init=cluster_cfg.init,
                           epochs=cluster_cfg.epochs, learning_rate=cluster_cfg.learning_rate)
        pairs = None if train is None or train.y is None or cluster_cfg.epochs == 0 else (train.x, train.y)
        clustered = cluster_model(model, spec, train=pairs,
                                  evaluate=None if evalset is None else (evalset.x, evalset.y), measure=True)
        steps.append(_step("cluster", model, evalset))
    return Compressed(model, pruned, clustered, tuple(steps))


def _step(name: str, model: Any, evalset: Dataset | None) -> rs.CompositionStep:
    return rs.CompositionStep(stage=name, params=int(model.count_params()), accuracy=_top1(model, evalset))


def compression_stages(profile: Profile) -> tuple[str, ...]:
    """The compression stages the profile turns on, as progress words ("pruning", "clustering")."""
    return tuple(name for name, on in (("pruning", _prune_enabled(profile.prune)), ("clustering", profile.cluster is not None))
                 if on)


def _prune_enabled(cfg: PruneSection) -> bool:
    return bool(cfg.ratio or cfg.macs_reduction)
