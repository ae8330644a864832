"""keras.applications models prune to ~50% MACs and still run in LiteRT."""

import numpy as np
import pytest

from edgeopt.prune import PruneSpec, prune_model
from tests.prune.runtimes import run_litert, to_tflite

pytestmark = pytest.mark.tensorflow


def _check(model, tmp_path, round_to):
    result = prune_model(model, PruneSpec(macs_reduction=0.5, round_to=round_to))
    assert 0.5 <= result.macs_reduction < 0.56
    assert result.params_after < result.params_before
    assert not result.unprunable and not result.warnings
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    out = run_litert(to_tflite(result.model, tmp_path), x)
    np.testing.assert_allclose(out, np.asarray(result.model(x)), atol=1e-4)
    return result


def test_mobilenet_v2(keras, tmp_path):
    model = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, weights=None)
    result = _check(model, tmp_path, round_to=8)
    assert all(g.channels_after % 8 == 0 for g in result.groups if g.channels_after != g.channels_before)


@pytest.mark.slow
def test_resnet50(keras, tmp_path):
    model = keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None)
    _check(model, tmp_path, round_to=1)


@pytest.mark.slow
def test_mobilenet_v3_small_prunes_through_its_keras_ops_hard_swish(keras, tmp_path):
    """hard_sigmoid is `ReLU(6)(x + 3.0) * (1 / 6)`: keras.ops Add/Multiply nodes that used to block 19 of 37 groups."""
    model = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), alpha=0.75, weights=None)
    result = _check(model, tmp_path, round_to=8)
    assert len(result.groups) >= 27 and sum(g.channels_after < g.channels_before for g in result.groups) >= 20
