"""Magnitude masks for a pattern at a target sparsity (numpy only).

Every kernel is viewed as (positions, in, out) (see edgeopt.sparsify.pattern); a mask is 1 where
the weight is kept and 0 where it is forced to zero. Ties are broken by position (stable sort),
so a mask is a pure function of the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeopt.errors import InputError
from edgeopt.sparsify.pattern import Pattern, PatternKind


@dataclass(frozen=True)
class KernelLayout:
    """How a Keras kernel maps to (positions, in, out)."""

    layer: str
    weight: str
    shape: tuple[int, ...]
    in_axis: int | None  # None: one input channel per filter (depthwise)
    out_axis: int

    @property
    def in_channels(self) -> int:
        return 1 if self.in_axis is None else self.shape[self.in_axis]

    @property
    def out_channels(self) -> int:
        return int(np.prod(self.shape)) // (self.positions * self.in_channels)

    @property
    def positions(self) -> int:
        if self.in_axis is None:  # depthwise (..., ch, mult)
            return int(np.prod(self.shape[:-2]))
        axes = (self.in_axis % len(self.shape), self.out_axis % len(self.shape))
        return int(np.prod([d for i, d in enumerate(self.shape) if i not in axes]))

    def view(self, w: np.ndarray) -> np.ndarray:
        """(positions, in, out) view of a kernel-shaped array."""
        if self.in_axis is None:  # depthwise (kh, kw, ch, mult): every channel is its own filter
            return w.reshape(-1, 1, int(np.prod(w.shape[-2:])))
        moved = np.moveaxis(w, (self.in_axis, self.out_axis), (-2, -1))
        return moved.reshape(-1, self.in_channels, moved.shape[-1])

    def unview(self, v: np.ndarray) -> np.ndarray:
        if self.in_axis is None:
            return v.reshape(self.shape)
        moved_shape = [d for i, d in enumerate(self.shape) if i not in (self.in_axis % len(self.shape), self.out_axis % len(self.shape))]
        moved_shape += [self.shape[self.in_axis], self.shape[self.out_axis]]
        return np.moveaxis(v.reshape(moved_shape), (-2, -1), (self.in_axis, self.out_axis))


def check_layout(layout: KernelLayout, pattern: Pattern) -> None:
    """Refuse a pattern the kernel cannot take (names the layer and the fix)."""
    if pattern.kind is PatternKind.UNSTRUCTURED:
        return
    g = pattern.group_in
    if layout.in_channels % g:
        what = "1 input channel per filter (depthwise)" if layout.in_axis is None else f"{layout.in_channels} input channels"
        msg = (
            f"pattern {pattern} needs input channels in multiples of {g}, but layer '{layout.layer}' "
                         f"{layout.weight} has {what}; exclude it with --layers or use --pattern unstructured"
        )
        raise InputError(msg)
    if pattern.kind is PatternKind.BLOCK and layout.out_channels % pattern.rows:
        msg = (
            f"pattern {pattern} needs output channels in multiples of {pattern.rows}, but layer "
                         f"'{layout.layer}' has {layout.out_channels}; exclude it with --layers or use a 1xC block"
        )
        raise InputError(msg)


def _scores(w: np.ndarray, layout: KernelLayout, pattern: Pattern) -> np.ndarray:
    """Magnitude per prunable unit: per weight (unstructured) or per block (mean |w|), flattened."""
    a = np.abs(w.astype(np.float64))
    if pattern.kind is PatternKind.BLOCK:
        v = layout.view(a)
        p, cin, cout = v.shape
        b = v.reshape(p, cin // pattern.cols, pattern.cols, cout // pattern.rows, pattern.rows)
        return b.mean(axis=(2, 4)).reshape(-1)
    return a.reshape(-1)


def _unit_mask(keep: np.ndarray, layout: KernelLayout, pattern: Pattern) -> np.ndarray:
    """Kernel-shaped float32 mask from a flat keep vector over units."""
    if pattern.kind is PatternKind.BLOCK:
        p = layout.positions
        cin, cout = layout.in_channels, layout.out_channels
        kb = keep.reshape(p, cin // pattern.cols, 1, cout // pattern.rows, 1)
        full = np.broadcast_to(kb, (p, cin // pattern.cols, pattern.cols, cout // pattern.rows, pattern.rows))
        return layout.unview(full.reshape(p, cin, cout).astype(np.float32))
    return keep.reshape(layout.shape).astype(np.float32)


def _nm_mask(w: np.ndarray, layout: KernelLayout, pattern: Pattern) -> np.ndarray:
    v = np.abs(layout.view(w.astype(np.float64)))
    p, cin, cout = v.shape
    g = v.reshape(p, cin // pattern.m, pattern.m, cout)
    order = np.argsort(g, axis=2, kind="stable")  # ascending: the first M-N of each group are cut
    keep = np.ones_like(g, dtype=bool)
    np.put_along_axis(keep, order[:, :, : pattern.m - pattern.n, :], False, axis=2)
    return layout.unview(keep.reshape(p, cin, cout).astype(np.float32))


def _cut(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-vector: the round(sparsity * n) smallest scores are cut."""
    k = int(round(sparsity * scores.size))
    keep = np.ones(scores.size, dtype=bool)
    if k > 0:
        keep[np.argsort(scores, kind="stable")[:k]] = False
    return keep


def compute_masks(weights: Sequence[np.ndarray], layouts: Sequence[KernelLayout], pattern: Pattern,
                  sparsity: float, global_: bool = False) -> list[np.ndarray]:
    """Masks for `weights` at `sparsity` (N:M ignores it: the pattern fixes it).

    Per layer, every kernel loses round(sparsity * units) units; globally one magnitude ranking over
    all kernels' units decides (small layers may lose more or less than the target).
    """
    if pattern.kind is PatternKind.N_M:
        return [_nm_mask(w, lay, pattern) for w, lay in zip(weights, layouts, strict=True)]
    scores = [_scores(w, lay, pattern) for w, lay in zip(weights, layouts, strict=True)]
    if not global_:
        return [_unit_mask(_cut(s, sparsity), lay, pattern) for s, lay in zip(scores, layouts, strict=True)]
    keep = _cut(np.concatenate(scores), sparsity) if scores else np.ones(0, dtype=bool)
    out, i = [], 0
    for s, lay in zip(scores, layouts, strict=True):
        out.append(_unit_mask(keep[i : i + s.size], lay, pattern))
        i += s.size
    return out
