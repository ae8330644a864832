"""Pruning through keras.ops arithmetic, LayerNormalization, LayerScale and grouped convolutions,
and what still blocks a group is named by its class and layer (exact surgery equivalence for the
hard-swish, LayerScale and grouped-conv blocks is in test_couplings)."""

import numpy as np
import pytest

from edgeopt.analysis.keras_stats import keras_model_stats
from edgeopt.prune import PruneSpec, prune_model
from edgeopt.prune.graph import build_graph
from edgeopt.prune.rules import default_rules
from tests.prune.prune_models import grouped_conv, hard_swish_block, layer_norm, layer_scale

pytestmark = pytest.mark.tensorflow

HALF = PruneSpec(ratio=0.5, allocation="uniform")


def _kept_columns(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Which output columns of `before` the pruned kernel `after` kept (matched exactly)."""
    b = before.reshape(-1, before.shape[-1])
    a = after.reshape(-1, after.shape[-1])
    return np.array([int(np.flatnonzero((b == a[:, [j]]).all(axis=0))[0]) for j in range(a.shape[1])])


def test_hard_swish_block_prunes_through_keras_ops_with_a_mac_target(keras):
    model, _ = hard_swish_block()
    graph = build_graph(model, default_rules())
    ops = {type(n.layer).__name__ for n in graph.flat.nodes if not isinstance(n.layer, keras.layers.Layer)}
    assert {"Add", "Relu6", "Multiply", "TrueDivide", "HardSilu", "Subtract"} <= ops  # really keras.ops nodes
    assert not graph.unprunable
    result = prune_model(model, PruneSpec(macs_reduction=0.3, round_to=2))
    assert result.macs_reduction >= 0.3 and result.macs_after == keras_model_stats(result.model).macs
    assert not result.unprunable
    expand = result.model.get_layer("expand").filters
    assert expand < 16 and expand % 2 == 0
    assert result.model.get_layer("se_expand").filters == expand  # the SE gate shrank with the trunk
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    assert np.asarray(result.model(x)).shape == (2, 4)


def test_layer_norm_gamma_and_beta_shrink_with_the_channels(keras):
    model, expected = layer_norm()
    result = prune_model(model, HALF)
    pruned = result.model
    stats = keras_model_stats(pruned)
    assert {name: stats.layer(name).channels for name in expected} == expected
    kept = _kept_columns(model.get_layer("c1").kernel.numpy(), pruned.get_layer("c1").kernel.numpy())
    assert len(kept) == 8
    ln_old, ln_new = model.get_layer("ln"), pruned.get_layer("ln")
    np.testing.assert_array_equal(ln_new.gamma.numpy(), ln_old.gamma.numpy()[kept])
    np.testing.assert_array_equal(ln_new.beta.numpy(), ln_old.beta.numpy()[kept])
    c2_rows = model.get_layer("c2").kernel.numpy()[:, :, kept, :]  # c2 lost exactly the same input rows
    assert len(_kept_columns(c2_rows, pruned.get_layer("c2").kernel.numpy())) == 4
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    assert np.asarray(pruned(x)).shape == (2, 4)


def test_layer_norm_over_spatial_axes_blocks_by_name(keras):
    L = keras.layers
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same", name="c1")(i)
    x = L.LayerNormalization(axis=(1, 2, 3), name="ln_all")(x)
    x = L.Conv2D(8, 1, name="c2")(x)
    model = keras.Model(i, L.Dense(4, name="out")(L.GlobalAveragePooling2D()(x)))
    result = prune_model(model, HALF)
    reasons = {u.layer: u.reason for u in result.unprunable}
    assert reasons["ln_all"].startswith("layer LayerNormalization: normalises axes")
    assert result.model.get_layer("c1").filters == 16 and result.model.get_layer("c2").filters == 4


def test_layer_scale_vector_shrinks(keras):
    model, _ = layer_scale()
    scale = model.get_layer("ls").weights[0]
    scale.assign(np.random.default_rng(3).uniform(0.1, 1.0, 16).astype("float32"))
    result = prune_model(model, HALF)
    ls = result.model.get_layer("ls")
    assert ls.projection_dim == 8 and tuple(ls.weights[0].shape) == (8,)
    dwg = result.model.get_layer("dwg")
    assert (dwg.filters, dwg.groups) == (8, 8)
    kept = _kept_columns(model.get_layer("dwg").kernel.numpy(), dwg.kernel.numpy())
    np.testing.assert_array_equal(ls.weights[0].numpy(), scale.numpy()[kept])


def test_grouped_conv_loses_whole_groups(keras):
    model, _ = grouped_conv()
    graph = build_graph(model, default_rules())
    (group,) = [g for g in graph.groups if "g" in g.layers]
    assert group.prunable and group.unit == 4 and {"c1", "g", "g_bn", "c2"} <= set(group.layers)
    for spec, kept in [(HALF, 8), (PruneSpec(ratio=0.3, allocation="uniform", round_to=8), 8),
                       (PruneSpec(ratio=0.3), None)]:
        result = prune_model(model, spec)
        g = result.model.get_layer("g")
        assert g.filters % 4 == 0 and g.groups == g.filters // 4 and g.kernel.shape[-2] == 4  # 4 channels per group
        assert g.filters < 16 and (kept is None or g.filters == kept)
        assert result.model.get_layer("c1").filters == g.filters
        old = model.get_layer("g").kernel.numpy()
        cols = _kept_columns(old, g.kernel.numpy())
        assert sorted(set(cols // 4)) == sorted(cols // 4)[::4] and len(cols) == g.filters  # whole groups kept
        assert result.macs_after == keras_model_stats(result.model).macs  # the schedule counts fewer groups right


def test_grouped_conv_that_widens_is_named(keras):
    L = keras.layers
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1, name="c1")(i)
    x = L.Conv2D(32, 3, padding="same", groups=4, name="widen")(x)
    x = L.Conv2D(8, 1, name="c2")(x)
    model = keras.Model(i, L.Dense(4, name="out")(L.GlobalAveragePooling2D()(x)))
    result = prune_model(model, HALF)
    reasons = {u.layer: u.reason for u in result.unprunable}
    assert reasons["widen"] == ("layer Conv2D: grouped convolution (groups=4) maps 4 input to 8 output channels per "
                                "group; whole groups are pruned only when the two counts are equal")
    assert result.model.get_layer("c1").filters == 16 and result.model.get_layer("c2").filters == 4


def test_unsupported_ops_are_named_not_blamed_on_add(keras):
    L = keras.layers
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(16, 3, padding="same", name="a")(i)
    a = a - keras.ops.mean(a, axis=-1, keepdims=True)  # a reduction over the channels
    b = L.Conv2D(16, 3, padding="same", name="b")(i)
    b = b * np.linspace(0.5, 1.5, 16).astype("float32")  # a per-channel constant
    c = L.Conv2D(16, 3, padding="same", name="c")(i)
    c = c + 1.0  # a scalar: fine
    x = L.Concatenate()([a, b, c])
    model = keras.Model(i, L.Dense(4, name="out")(L.GlobalAveragePooling2D()(x)))
    result = prune_model(model, HALF)
    reasons = sorted((u.layer.rstrip("0123456789").rstrip("_"), u.reason) for u in result.unprunable)
    assert reasons == [
        ("mean", "unknown keras op Mean (keras.ops.mean): not an element-wise op the pruner can follow channels "
                 "through"),
        ("multiply", "keras op Multiply: combines the channels with a constant of shape (16,), which would have to "
                     "be sliced with them (make it a weight of a layer, or ignore this group)"),
    ]
    assert [result.model.get_layer(n).filters for n in "abc"] == [16, 16, 8]
