"""Accounting, rounding, allocation and input validation of prune_model."""

import numpy as np
import pytest

from edgeopt.analysis.keras_stats import keras_model_stats
from edgeopt.errors import InputError
from edgeopt.prune import PruneSpec, prune_model
from tests.prune.prune_models import COUPLINGS, zoo

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def model(keras):
    return zoo()


@pytest.mark.parametrize("target", [0.3, 0.6])
@pytest.mark.parametrize("allocation", ["global", "uniform"])
def test_macs_target_met_and_reported_truthfully(model, target, allocation):
    result = prune_model(model, PruneSpec(macs_reduction=target, allocation=allocation))
    stats = keras_model_stats(result.model)
    assert (stats.macs, stats.params) == (result.macs_after, result.params_after)
    assert target <= result.macs_reduction < target + 0.08
    assert result.params_after < result.params_before


def test_uniform_ratio_and_round_to(model):
    result = prune_model(model, PruneSpec(ratio=0.5, allocation="uniform", round_to=4))
    changed = [g for g in result.groups if g.channels_after != g.channels_before]
    assert changed
    for g in result.groups:
        if g.channels_before > 4:
            assert g.channels_after % 4 == 0 and g.channels_after >= 4
            assert abs(g.channels_after - g.channels_before / 2) <= 2
    assert result.model.get_layer("stem").filters == 8
    assert result.model.get_layer("se_r").filters == 4  # 4 channels <= round_to: left alone


def test_params_drop_with_ratio(model):
    small = prune_model(model, PruneSpec(ratio=0.25, allocation="uniform"))
    large = prune_model(model, PruneSpec(ratio=0.6, allocation="uniform"))
    assert large.params_after < small.params_after < model.count_params()
    assert large.macs_after < small.macs_after < small.macs_before


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn-scale", "random"])
def test_criteria(model, criterion):
    a = prune_model(model, PruneSpec(ratio=0.5, criterion=criterion, seed=3))
    assert a.model.outputs[0].shape == model.outputs[0].shape
    if criterion == "random":
        b = prune_model(model, PruneSpec(ratio=0.5, criterion=criterion, seed=3))
        x = np.ones((1, 12, 12, 3), np.float32)
        np.testing.assert_array_equal(np.asarray(a.model(x)), np.asarray(b.model(x)))


def test_ignore_patterns(model):
    result = prune_model(model, PruneSpec(ratio=0.5, ignore=("stem", "nothing_.*")))
    assert result.model.get_layer("stem").filters == 16
    assert result.model.get_layer("pw").filters == 16  # same group as stem (residual Add)
    assert any(u.layer == "stem" and "ignored" in u.reason for u in result.unprunable)
    assert result.warnings == ("ignore pattern 'nothing_.*' matches no layer",)


@pytest.mark.parametrize("kwargs, text", [
    ({"ratio": 1.0}, "ratio must be in [0, 1)"),
    ({"ratio": -0.1}, "ratio must be in [0, 1)"),
    ({"macs_reduction": 1.2}, "macs_reduction must be in [0, 1)"),
    ({}, "exactly one of ratio or macs_reduction"),
    ({"ratio": 0.5, "macs_reduction": 0.5}, "exactly one of ratio or macs_reduction"),
    ({"ratio": 0.5, "round_to": 0}, "round_to must be an integer >= 1"),
    ({"ratio": 0.5, "criterion": "l3"}, "unknown pruning criterion 'l3'"),
    ({"ratio": 0.5, "allocation": "local"}, "unknown allocation 'local'"),
    ({"ratio": 0.5, "ignore": ("(",)}, "not a valid regular expression"),
])
def test_bad_spec(kwargs, text):
    with pytest.raises(InputError) as err:
        PruneSpec(**kwargs)
    assert text in str(err.value)


def test_unreachable_mac_target_names_the_largest(keras):
    model, _ = COUPLINGS["custom_layer"]()
    with pytest.raises(InputError, match=r"unreachable: the largest reachable MAC reduction is 0\.\d+") as err:
        prune_model(model, PruneSpec(macs_reduction=0.95))
    best = float(str(err.value).split("reduction is ")[1].split(" ")[0])
    assert prune_model(model, PruneSpec(macs_reduction=best)).macs_reduction >= best


def test_unbuilt_model_is_an_input_error(keras):
    model = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(InputError, match="keras.Input"):
        prune_model(model, PruneSpec(ratio=0.5))
