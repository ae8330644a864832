"""Compression stages on the Keras model before conversion: prune, sparsify, then cluster.

Clustering after sparsifying re-applies the zero masks, so the zeros survive (one more shared value, 0).

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
    from edgeopt.sparsify.sparsifier import SparsifyResult


@dataclass(frozen=True)
class Compressed:
    model: Any  # keras.Model to convert
    prune: rs.PruneStage | None
    cluster: ClusterResult | None
    steps: tuple[rs.CompositionStep, ...]  # params and top-1 after each step, from "float" on
    sparsity: SparsifyResult | None = None


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
    """Apply the profile's [prune], [sparsity] and [cluster] sections, in that order."""
    prune_cfg = profile.prune
    cluster_cfg = profile.cluster
    sparsity_cfg = profile.sparsity
    if not _prune_enabled(prune_cfg) and cluster_cfg is None and sparsity_cfg is None:
        return Compressed(model, None, None, ())
    model = copy_model(model)
    steps = [_step("float", model, evalset)]
    pruned = clustered = None
    if _prune_enabled(prune_cfg):
        from edgeopt.pipeline.prune_stage import prune_and_finetune

        outcome = prune_and_finetune(model, prune_cfg, train, evalset, allow_no_finetune)
        model, pruned = outcome.model, outcome.report
        steps.append(_step("prune", model, evalset))
    sparsified = None
    if sparsity_cfg is not None:
        from edgeopt.sparsify.sparsifier import sparsify_model

        spec = sparsity_cfg.spec()
        if spec.finetune and (train is None or train.y is None):
            msg = (
                "[sparsity] epochs > 0 prunes while fine-tuning, which needs training data with labels; "
                             "give --train data.npz (x, y), or set sparsity.epochs = 0 (one-shot)"
            )
            raise InputError(msg)
        sparsified = sparsify_model(model, spec, None if train is None or train.y is None else (train.x, train.y),
                                    None if evalset is None else (evalset.x, evalset.y))
        steps.append(_step("sparsify", model, evalset))
    if cluster_cfg is not None:
        from edgeopt.cluster.clusterer import ClusterSpec, cluster_model

        if cluster_cfg.epochs > 0 and (train is None or train.y is None):
            msg = "[cluster] epochs > 0 needs training data with labels; give --train data.npz (x, y)"
            raise InputError(msg)
        spec = ClusterSpec(clusters=cluster_cfg.clusters, layers=cluster_cfg.layers, init=cluster_cfg.init,
                           epochs=cluster_cfg.epochs, learning_rate=cluster_cfg.learning_rate)
        pairs = None if train is None or train.y is None or cluster_cfg.epochs == 0 else (train.x, train.y)
        masks = None if sparsified is None else _zero_masks(model, sparsified)
        clustered = cluster_model(model, spec, train=pairs,
                                  evaluate=None if evalset is None else (evalset.x, evalset.y), measure=True)
        if masks is not None:
            for variable, mask in masks:
                variable.assign(variable.numpy() * mask)
        steps.append(_step("cluster", model, evalset))
    return Compressed(model, pruned, clustered, tuple(steps), sparsified)


def _zero_masks(model: Any, sparsified: SparsifyResult) -> list[tuple[Any, Any]]:
    """(kernel, mask of its non-zeros) for the sparsified kernels, to re-apply after clustering."""
    from edgeopt.sparsify.targets import select_kernels

    kernels, _ = select_kernels(model, sparsified.spec.layers)
    return [(k.variable, (k.numpy() != 0).astype("float32")) for k in kernels]


def _step(name: str, model: Any, evalset: Dataset | None) -> rs.CompositionStep:
    return rs.CompositionStep(stage=name, params=int(model.count_params()), accuracy=_top1(model, evalset))


def compression_stages(profile: Profile) -> tuple[str, ...]:
    """The compression stages the profile turns on, as progress words ("pruning", "clustering")."""
    return tuple(name for name, on in (("pruning", _prune_enabled(profile.prune)), ("sparsifying", profile.sparsity is not None),
                                       ("clustering", profile.cluster is not None)) if on)


def _prune_enabled(cfg: PruneSection) -> bool:
    return bool(cfg.ratio or cfg.macs_reduction)
