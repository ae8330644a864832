"""Patterns, masks and the polynomial schedule (numpy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import InputError
from edgeopt.sparsify.masks import KernelLayout, check_layout, compute_masks
from edgeopt.sparsify.pattern import PatternKind, parse_pattern
from edgeopt.sparsify.schedule import PolynomialSchedule
from edgeopt.sparsify.targets import layout_of


def _conv(cin: int = 8, cout: int = 6, name: str = "conv") -> tuple[np.ndarray, KernelLayout]:
    w = np.random.default_rng(0).normal(size=(3, 3, cin, cout)).astype(np.float32)
    return w, layout_of(name, "kernel", w.shape, "Conv2D")


def test_parse_pattern_forms_and_refusals() -> None:
    assert parse_pattern("unstructured").kind is PatternKind.UNSTRUCTURED
    p = parse_pattern("2:4")
    assert (p.kind, p.n, p.m, p.fixed_sparsity, str(p)) == (PatternKind.N_M, 2, 4, 0.5, "2:4")
    b = parse_pattern("block:1x4")
    assert (b.kind, b.rows, b.cols, b.group_in, str(b)) == (PatternKind.BLOCK, 1, 4, 4, "block:1x4")
    for bad in ("4:2", "0:4", "block:1x1", "dense", "2/4"):
        with pytest.raises(InputError, match="--pattern"):
            parse_pattern(bad)


def test_unstructured_per_layer_mask_zeroes_the_smallest_exactly() -> None:
    w, lay = _conv()
    (m,) = compute_masks([w], [lay], parse_pattern("unstructured"), 0.8)
    assert m.shape == w.shape and int((m == 0).sum()) == round(0.8 * w.size)
    assert np.abs(w[m == 0]).max() <= np.abs(w[m == 1]).min()


def test_global_mask_has_one_threshold_over_layers() -> None:
    small, big = np.full((4, 4), 10.0, np.float32), np.random.default_rng(1).normal(size=(16, 16)).astype(np.float32)
    lays = [layout_of("a", "kernel", small.shape, "Dense"), layout_of("b", "kernel", big.shape, "Dense")]
    ma, mb = compute_masks([small, big], lays, parse_pattern("unstructured"), 0.5, global_=True)
    assert ma.min() == 1.0  # the large-valued small layer keeps everything
    assert int((mb == 0).sum()) == round(0.5 * (small.size + big.size))


def test_two_four_keeps_two_largest_in_every_group_of_four_input_channels() -> None:
    w, lay = _conv(cin=8, cout=3)
    (m,) = compute_masks([w], [lay], parse_pattern("2:4"), 0.5)
    g = m.reshape(3, 3, 2, 4, 3)  # (kh, kw, groups, 4, cout)
    assert (g.sum(axis=3) == 2).all()
    a = np.abs(w).reshape(3, 3, 2, 4, 3)
    kept_min = np.where(g == 1, a, np.inf).min(axis=3)
    cut_max = np.where(g == 0, a, -np.inf).max(axis=3)
    assert (kept_min >= cut_max).all()


def test_block_mask_zeroes_whole_blocks_along_the_input() -> None:
    w = np.random.default_rng(2).normal(size=(16, 5)).astype(np.float32)  # Dense (in, out)
    lay = layout_of("fc", "kernel", w.shape, "Dense")
    (m,) = compute_masks([w], [lay], parse_pattern("block:1x4"), 0.75)
    blocks = m.reshape(4, 4, 5)  # (in blocks, 4, out)
    assert (blocks.min(axis=1) == blocks.max(axis=1)).all()  # all-or-nothing per block
    assert int((blocks[:, 0, :] == 0).sum()) == round(0.75 * 20)


def test_pattern_refuses_layers_with_the_wrong_input_channels_naming_them() -> None:
    _, stem = _conv(cin=1, name="stem_conv")
    with pytest.raises(InputError, match=r"layer 'stem_conv' kernel has 1 input channels"):
        check_layout(stem, parse_pattern("2:4"))
    dw = layout_of("dw", "depthwise_kernel", (3, 3, 8, 1), "DepthwiseConv2D")
    with pytest.raises(InputError, match=r"'dw' depthwise_kernel has 1 input channel per filter \(depthwise\)"):
        check_layout(dw, parse_pattern("block:1x4"))
    check_layout(stem, parse_pattern("unstructured"))  # any kernel takes unstructured zeros
    (m,) = compute_masks([np.ones((3, 3, 8, 1), np.float32)], [dw], parse_pattern("unstructured"), 0.5)
    assert m.shape == (3, 3, 8, 1) and int((m == 0).sum()) == 36


def test_transposed_conv_groups_along_its_last_axis() -> None:
    lay = layout_of("up", "kernel", (3, 3, 5, 8), "Conv2DTranspose")  # (kh, kw, out, in)
    assert (lay.in_channels, lay.out_channels, lay.positions) == (8, 5, 9)
    w = np.random.default_rng(3).normal(size=(3, 3, 5, 8)).astype(np.float32)
    (m,) = compute_masks([w], [lay], parse_pattern("2:4"), 0.5)
    assert (m.reshape(3, 3, 5, 2, 4).sum(axis=4) == 2).all()


def test_polynomial_schedule_follows_zhu_gupta() -> None:
    s = PolynomialSchedule(0.8, begin_step=10, end_step=110, frequency=10)
    assert s.sparsity(0) == 0.0 and s.sparsity(10) == pytest.approx(0.0)
    assert s.sparsity(60) == pytest.approx(0.8 - 0.8 * 0.5**3)  # s_f + (s_i - s_f)(1 - t/T)^3
    assert s.sparsity(110) == s.sparsity(500) == 0.8
    values = [s.sparsity(t) for t in range(10, 111)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert [t for t in range(0, 130) if s.updates_at(t)] == list(range(10, 111, 10))
    with pytest.raises(InputError):
        PolynomialSchedule(1.0, 0, 10)
