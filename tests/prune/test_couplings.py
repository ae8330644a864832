"""One tiny model per coupling kind: prunes, keeps its output shape, has the expected channel counts,
and computes exactly what the original computes once the removed channels are made dead."""

import numpy as np
import pytest

from edgeopt.analysis.keras_stats import keras_model_stats
from edgeopt.prune import PruneSpec, prune_model
from edgeopt.prune.graph import build_graph
from edgeopt.prune.rules import Axis, default_rules
from tests.prune.prune_models import COUPLINGS

pytestmark = pytest.mark.tensorflow

SPEC = PruneSpec(ratio=0.5, allocation="uniform", criterion="l1")


def _kill(model, rng):
    """Zero a random half of every prunable group in all its members; returns {group index: killed}."""
    import keras

    graph = build_graph(model, default_rules())
    killed = {}
    for g in graph.groups:
        if not g.prunable:
            continue
        blocks = g.size // g.unit  # a grouped conv's group loses whole convolution groups
        n_kill = blocks - int(np.floor(blocks * 0.5 + 0.5))
        dead_blocks = np.sort(rng.choice(blocks, n_kill, replace=False))
        dead = (dead_blocks[:, None] * g.unit + np.arange(g.unit)).reshape(-1)
        killed[g.index] = dead
        for m in g.members:
            layer = graph.layers[m.layer_id]
            w = {v.name: v for v in layer.weights}
            arr = {k: np.array(v) for k, v in w.items()}
            idx = m.indices(g.size)[:, dead].reshape(-1)
            if m.axis == Axis.OUT:
                for k in ("kernel", "pointwise_kernel", "bias"):
                    if k in arr:
                        arr[k][..., idx] = 0
            elif m.axis == Axis.IN:
                if isinstance(layer, keras.layers.SeparableConv2D):
                    mult = arr["depthwise_kernel"].shape[-1]
                    arr["depthwise_kernel"][..., idx, :] = 0
                    rows = (idx[:, None] * mult + np.arange(mult)).reshape(-1)
                    arr["pointwise_kernel"][..., rows, :] = 0
                else:
                    arr["kernel"][..., idx, :] = 0
            elif getattr(layer, "groups", 1) > 1:  # grouped conv: its output channels
                arr["kernel"][..., idx] = 0
                arr["bias"][idx] = 0
            elif type(layer).__name__ == "LayerScale":
                for k in arr:
                    arr[k][idx] = 0
            else:
                for k in ("gamma", "beta", "bias"):
                    if k in arr:
                        arr[k][idx] = 0
                if "kernel" in arr:
                    arr["kernel"][..., idx, :] = 0
            for k, v in w.items():
                v.assign(arr[k])
    return killed


@pytest.mark.parametrize("name", sorted(COUPLINGS))
def test_coupling_prunes_exactly(keras, name):
    model, expected = COUPLINGS[name]()
    rng = np.random.default_rng(1)
    _kill(model, rng)
    x = rng.standard_normal((3, *model.inputs[0].shape[1:])).astype("float32")
    result = prune_model(model, SPEC)
    pruned = result.model
    assert pruned.outputs[0].shape[1:] == model.outputs[0].shape[1:]
    stats = keras_model_stats(pruned)
    got = {layer: stats.layer(layer).channels for layer in expected}
    assert got == expected
    np.testing.assert_allclose(np.asarray(pruned(x)), np.asarray(model(x)), atol=1e-5)
    assert result.macs_after < result.macs_before
    assert result.params_after < result.params_before


def test_unknown_layer_is_listed_and_blocks_its_group(keras):
    model, _ = COUPLINGS["custom_layer"]()
    result = prune_model(model, SPEC)
    reasons = dict((u.layer, u.reason) for u in result.unprunable)
    assert "unknown layer type ChannelScale" in reasons["scale"]
    assert all("c1" not in g.layers for g in result.groups)  # the blocked group is not offered
    assert result.model.get_layer("c1").filters == 8


def test_ratio_zero_is_identity_on_residual_model(keras):
    model, _ = COUPLINGS["residual"]()
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
    result = prune_model(model, PruneSpec(ratio=0.0))
    assert np.max(np.abs(np.asarray(result.model(x)) - np.asarray(model(x)))) <= 1e-5
    assert [layer.name for layer in result.model.layers] == [layer.name for layer in model.layers]
    assert result.macs_after == result.macs_before and result.params_after == result.params_before


def test_custom_rule_unblocks_custom_layer(keras):
    """A user registers a rule for their layer type on a copy of the table."""
    from edgeopt.prune.rules import PruneRule, Role, register_rule
    from tests.prune.prune_models import ChannelScale

    rules = default_rules()
    register_rule(rules, ChannelScale, PruneRule(
        Role.CHANNELWISE,
        prune=lambda w, i, o: {k: (v if i is None else v[i]) for k, v in w.items()},
        rows=lambda w, axis: w["scale"][:, None]))
    model, _ = COUPLINGS["custom_layer"]()
    result = prune_model(model, SPEC, rules=rules)
    assert result.model.get_layer("c1").filters == 4
    assert result.model.get_layer("scale").weights[0].shape == (4,)
    assert ChannelScale not in default_rules()  # the default table is untouched
