"""The pruning schedule: pick how many channels each group keeps, then rebuild the model."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeopt.analysis.keras_stats import keras_model_stats, layer_macs, node_shapes
from edgeopt.errors import EdgeoptError, InputError
from edgeopt.prune.graph import DependencyGraph, Group, build_graph
from edgeopt.prune.importance import Criterion, group_params, group_scores
from edgeopt.prune.rules import Axis, PruneRule, default_rules, layer_weights
from edgeopt.prune.surgery import rebuild
from edgeopt.vocabulary import PruneAllocation

_MAX_RATIO = 1.0 - 1e-9
_SEARCH_STEPS = 40


Allocation = PruneAllocation  # the closed set the profile and `edgeopt prune --allocation` name


@dataclass(frozen=True)
class PruneSpec:
    """What to prune. Give `ratio` (fraction of channels removed) or `macs_reduction` (fraction of MACs)."""

    ratio: float | None = None
    macs_reduction: float | None = None
    criterion: Criterion = Criterion.L1
    allocation: Allocation = Allocation.GLOBAL
    round_to: int = 1
    ignore: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.macs_reduction is None):
            msg = "give exactly one of ratio or macs_reduction for pruning"
            raise InputError(msg)
        for name in ("ratio", "macs_reduction"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0.0 <= v < 1.0):
                msg = f"pruning {name} must be in [0, 1), got {v!r}"
                raise InputError(msg)
        try:
            object.__setattr__(self, "criterion", Criterion(self.criterion))
        except ValueError:
            msg = (
                f"unknown pruning criterion {self.criterion!r}; choose one of "
                f"{', '.join(c.value for c in Criterion)}"
            )
            raise InputError(msg) from None
        try:
            object.__setattr__(self, "allocation", Allocation(self.allocation))
        except ValueError:
            msg = (
                f"unknown allocation {self.allocation!r}; choose one of "
                f"{', '.join(a.value for a in Allocation)}"
            )
            raise InputError(msg) from None
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            msg = f"round_to must be an integer >= 1, got {self.round_to!r}"
            raise InputError(msg)
        object.__setattr__(self, "ignore", tuple(self.ignore))
        for pattern in self.ignore:
            try:
                re.compile(pattern)
            except re.error as exc:
                msg = f"ignore pattern {pattern!r} is not a valid regular expression: {exc}"
                raise InputError(msg) from None


@dataclass(frozen=True)
class GroupResult:
    layers: tuple[str, ...]
    channels_before: int
    channels_after: int


@dataclass(frozen=True)
class Unprunable:
    layer: str
    reason: str


@dataclass(frozen=True)
class PruneResult:
    model: Any
    ratio: float  # channel ratio used (searched when a MAC target was given)
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    groups: tuple[GroupResult, ...]  # prunable groups, pruned or not
    unprunable: tuple[Unprunable, ...]
    warnings: tuple[str, ...]

    @property
    def macs_reduction(self) -> float:
        return 1.0 - self.macs_after / self.macs_before if self.macs_before else 0.0

    @property
    def params_reduction(self) -> float:
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0


def prune_model(model: Any, spec: PruneSpec, *, rules: Mapping[type, PruneRule] | None = None) -> PruneResult:
    """Remove channels from `model` per `spec`; returns a new model (the input is not modified).

    `rules` is a pruning table from `rules.default_rules()`, possibly extended with custom layer types.
    """
    rules = default_rules() if rules is None else rules
    graph = build_graph(model, rules)
    before = keras_model_stats(model, graph.flat)
    warnings: list[str] = []
    unprunable = [Unprunable(n, r) for n, r in graph.unprunable]
    ignored = _ignored_groups(graph, spec.ignore, warnings, unprunable)
    candidates = [g for g in graph.groups if g.prunable and g.index not in ignored]
    rng = np.random.default_rng(spec.seed)
    weights = {lid: layer_weights(graph.layers[lid]) for lid in graph.plans}
    scores = {g.index: group_scores(group_params(graph, g, weights), spec.criterion, rng) for g in candidates}
    schedule = _Schedule(graph, candidates, scores, spec)
    ratio = spec.ratio if spec.ratio is not None else schedule.search(spec.macs_reduction or 0.0, before.macs)
    counts = schedule.counts(ratio)
    keep = {g: _keep(scores[g], n, graph.groups[g].unit) for g, n in counts.items() if n < graph.groups[g].size}
    new_model = rebuild(graph, keep, warnings)
    _check_outputs(model, new_model)
    if getattr(model, "compiled", False):
        try:
            new_model.compile_from_config(model.get_compile_config())
        except Exception as exc:  # noqa: BLE001 - a custom loss may not deserialise; the model is still valid
            warnings.append(f"could not copy the compile configuration ({exc}); compile the pruned model again")
    after = keras_model_stats(new_model)
    table = tuple(GroupResult(g.layers, g.size, counts.get(g.index, g.size)) for g in candidates)
    return PruneResult(new_model, float(ratio), before.params, after.params, before.macs, after.macs, table,
                       tuple(unprunable), tuple(warnings))


def _ignored_groups(graph: DependencyGraph, patterns: tuple[str, ...], warnings: list[str],
                    unprunable: list[Unprunable]) -> set[int]:
    names = [node.layer.name for node in graph.flat.nodes]
    for p in patterns:
        if not any(re.fullmatch(p, n) for n in names):
            warnings.append(f"ignore pattern {p!r} matches no layer")
    ignored: set[int] = set()
    for g in graph.groups:
        hits = [(m.layer, p) for m in g.members for p in patterns if re.fullmatch(p, m.layer)]
        if hits and g.prunable:
            ignored.add(g.index)
            for layer in dict.fromkeys(m.layer for m in g.members if m.axis == Axis.OUT):
                unprunable.append(Unprunable(layer, f"ignored: group contains {hits[0][0]!r} (pattern {hits[0][1]!r})"))
    return ignored


def _keep(scores: np.ndarray, n: int, unit: int) -> np.ndarray:
    """The `n` best channels, taken in aligned blocks of `unit` (whole groups of a grouped conv) by summed score."""
    if unit == 1:
        return np.sort(np.argsort(-scores, kind="stable")[:n])
    blocks = np.sort(np.argsort(-scores.reshape(-1, unit).sum(axis=1), kind="stable")[: n // unit])
    return (blocks[:, None] * unit + np.arange(unit)[None, :]).reshape(-1)


def _rounded(n: int, raw_keep: float, round_to: int) -> int:
    if n <= round_to:
        return n
    k = max(round_to, int(math.floor(raw_keep / round_to + 0.5)) * round_to)
    return n if k >= n else k


class _Schedule:
    """Channel counts per group for a ratio, and the analytic MAC count of those counts."""

    def __init__(self, graph: DependencyGraph, groups: list[Group], scores: dict[int, np.ndarray],
                 spec: PruneSpec) -> None:
        self.graph, self.groups, self.spec = graph, groups, spec
        if groups and spec.allocation == Allocation.GLOBAL:
            norm = [scores[g.index] / (scores[g.index].mean() or 1.0) for g in groups]
            owner = np.concatenate([np.full(g.size, g.index) for g in groups])
            self.global_order = owner[np.argsort(np.concatenate(norm), kind="stable")]
        flat = graph.flat
        self.nodes = []
        for node in flat.nodes:
            in_shape, out_shape = node_shapes(flat, node.inputs, node.outputs)
            if layer_macs(node.layer, in_shape, out_shape):
                self.nodes.append((node.layer, in_shape, out_shape, graph.layouts[node.inputs[0]],
                                   graph.layouts[node.outputs[0]]))

    def counts(self, ratio: float) -> dict[int, int]:
        rt = self.spec.round_to
        if not self.groups:
            return {}
        if self.spec.allocation == Allocation.UNIFORM:
            return {g.index: _rounded(g.size, g.size * (1.0 - ratio), math.lcm(rt, g.unit)) for g in self.groups}
        removed = np.bincount(self.global_order[: int(ratio * len(self.global_order))],
                              minlength=len(self.graph.groups))
        return {g.index: _rounded(g.size, g.size - int(removed[g.index]), math.lcm(rt, g.unit)) for g in self.groups}

    def macs(self, counts: Mapping[int, int]) -> int:
        total = 0
        for layer, in_shape, out_shape, lin, lout in self.nodes:
            c_in = lin.dim(counts)
            groups = getattr(layer, "groups", 1)
            per_group = int(in_shape[-1] or 0) // groups if groups > 1 else 0  # whole groups go: channels/group stay
            total += layer_macs(layer, (*in_shape[:-1], c_in), (*out_shape[:-1], lout.dim(counts)),
                                groups=c_in // per_group if per_group else None)
        return total

    def search(self, target: float, macs_before: int) -> float:
        """Smallest ratio whose MAC reduction reaches `target`."""
        def reduction(r: float) -> float:
            return 1.0 - self.macs(self.counts(r)) / macs_before if macs_before else 0.0

        best = reduction(_MAX_RATIO)
        if target > best:
            msg = (
                f"macs_reduction {target:g} is unreachable: the largest reachable MAC reduction is "
                f"{math.floor(best * 1000) / 1000:.3f} with round_to={self.spec.round_to} "
                f"({len(self.groups)} prunable groups); lower the target or ignore fewer layers"
            )
            raise InputError(msg)
        lo, hi = 0.0, _MAX_RATIO
        if reduction(lo) >= target:
            return lo
        for _ in range(_SEARCH_STEPS):
            mid = (lo + hi) / 2
            if reduction(mid) >= target:
                hi = mid
            else:
                lo = mid
        return hi


def _check_outputs(old: Any, new: Any) -> None:
    old_shapes = [tuple(t.shape[1:]) for t in old.outputs]
    new_shapes = [tuple(t.shape[1:]) for t in new.outputs]
    if old_shapes != new_shapes:
        msg = f"internal: pruning changed the output shapes {old_shapes} -> {new_shapes}; please report"
        raise EdgeoptError(msg)
