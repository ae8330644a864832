"""A pruned model saves, reloads safely, converts to TFLite (float, int8) and ONNX, and runs there."""

import numpy as np
import pytest

from edgeopt.prune import PruneSpec, prune_model
from tests.prune.prune_models import zoo
from tests.prune.runtimes import run_litert, run_onnx, to_tflite

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def pruned(keras):
    keras.utils.set_random_seed(0)  # the weights must not depend on which tests ran earlier in this worker
    model = zoo()
    result = prune_model(model, PruneSpec(macs_reduction=0.4, round_to=2))
    x = np.random.default_rng(0).standard_normal((4, 12, 12, 3)).astype("float32")
    return model, result, x


def test_pruned_zoo_is_smaller(pruned):
    model, result, _ = pruned
    assert result.macs_reduction >= 0.4
    assert all(g.channels_after % 2 == 0 for g in result.groups if g.channels_after != g.channels_before)
    assert result.model.count_params() == result.params_after < model.count_params()


def test_keras_roundtrip_safe_mode(keras, pruned, tmp_path):
    _, result, x = pruned
    path = tmp_path / "pruned.keras"
    result.model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)


def test_tflite_float_and_int8_run_in_litert(pruned, tmp_path):
    _, result, x = pruned
    ref = result.model.predict(x, verbose=0)
    fp = run_litert(to_tflite(result.model, tmp_path), x)
    np.testing.assert_allclose(fp, ref, atol=1e-5)
    q = to_tflite(result.model, tmp_path, int8=True, calib=x)
    out = run_litert(q, x)
    assert out.shape == ref.shape and np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.1  # softmax probabilities


def test_onnx_runs_in_onnxruntime(pruned):
    _, result, x = pruned
    np.testing.assert_allclose(run_onnx(result.model, x), result.model.predict(x, verbose=0), atol=1e-5)
