"""Channel importance per group, aggregated over every coupled layer.

Each member contributes the parameters of each channel (output filters, input rows, BN/depthwise
slices). L1 sums |w|, L2 takes the root of the summed squares, BN_SCALE sums |gamma| of the group's
BatchNormalization layers (L1 when the group has none), RANDOM draws seeded uniform scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edgeopt.prune.graph import DependencyGraph, Group
from edgeopt.prune.rules import Axis, Weights
from edgeopt.vocabulary import PruneCriterion

Criterion = PruneCriterion  # the closed set the profile and `edgeopt prune --criterion` name


@dataclass(frozen=True)
class GroupParams:
    """A group's parameters per channel: rows[i] is (size, k_i) for member i; scales are BN gammas."""

    size: int
    rows: tuple[np.ndarray, ...]
    scales: tuple[np.ndarray, ...]


Scorer = Callable[[GroupParams, np.random.Generator], np.ndarray]


def _l1(p: GroupParams, rng: np.random.Generator) -> np.ndarray:
    return sum((np.abs(r).sum(axis=1) for r in p.rows), np.zeros(p.size))


def _l2(p: GroupParams, rng: np.random.Generator) -> np.ndarray:
    return np.sqrt(sum((np.square(r).sum(axis=1) for r in p.rows), np.zeros(p.size)))


def _bn_scale(p: GroupParams, rng: np.random.Generator) -> np.ndarray:
    if not p.scales:
        return _l1(p, rng)
    return sum((np.abs(s) for s in p.scales), np.zeros(p.size))


def _random(p: GroupParams, rng: np.random.Generator) -> np.ndarray:
    return rng.random(p.size)


SCORERS: dict[Criterion, Scorer] = {
    Criterion.L1: _l1,
    Criterion.L2: _l2,
    Criterion.BN_SCALE: _bn_scale,
    Criterion.RANDOM: _random,
}


def group_params(graph: DependencyGraph, group: Group, weights: Mapping[int, Weights]) -> GroupParams:
    """Collect each member's per-channel parameters (weights: id(layer) -> layer weights)."""
    rows, scales = [], []
    for m in group.members:
        plan = graph.plans.get(m.layer_id)
        if plan is None:
            continue
        w = weights[m.layer_id]
        full = plan.rule.rows(w, m.axis).astype(np.float64)
        idx = m.indices(group.size)  # (spatial, n)
        rows.append(np.moveaxis(full[idx], 1, 0).reshape(group.size, -1))
        if plan.rule.scale and plan.rule.scale in w and m.axis == Axis.CHANNEL:
            scales.append(w[plan.rule.scale][m.offset:m.offset + group.size].astype(np.float64))
    return GroupParams(group.size, tuple(rows), tuple(scales))


def group_scores(params: GroupParams, criterion: Criterion, rng: np.random.Generator) -> np.ndarray:
    """Importance of each channel of a group (higher = keep)."""
    return np.asarray(SCORERS[Criterion(criterion)](params, rng), dtype=np.float64)
