"""A valid int8 model that XNNPACK refuses to prepare still builds, runs and is timed, and says so.

The model has a squeeze-excite branch whose ReLU is always zero, so calibration
gives that tensor a degenerate int8 scale that XNNPACK rejects; LiteRT's builtin
kernels run it fine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.pipeline.build import BuildRequest, build
from edgeopt.runtime import RunnerOptions, open_runner
from edgeopt.runtime.litert import XNNPACK_REFUSED

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def refused_build(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(2, 1, activation="relu", bias_initializer=keras.initializers.Constant(-100.0))(s)
    s = keras.layers.Conv2D(8, 1, activation="sigmoid")(s)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Multiply()([x, s]))
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x), name="dead_relu")
    d = tmp_path_factory.mktemp("refused")
    model.save(d / "dead_relu.keras")
    return build(BuildRequest(model=d / "dead_relu.keras", target="mobile-cpu", out=d / "out",
                              random_calibration=True))


def test_build_succeeds_and_reports_the_refusal(refused_build):
    report = json.loads((refused_build.out / "report.json").read_text())
    assert report["baseline"]["latency_ms"]["delegate"] == "xnnpack"
    assert report["optimized"]["latency_ms"]["delegate"] == XNNPACK_REFUSED
    assert report["optimized"]["latency_ms"]["runs"] >= 50 and report["optimized"]["latency_ms"]["p50"] > 0
    notes = [n for n in report["notes"] if "XNNPACK refused" in n]
    assert notes == [f"XNNPACK refused to prepare {report['optimized']['artifact']['path']} (often an int8 scale "
                     "from an activation that was constant on the calibration data); its latency was measured on "
                     "LiteRT's builtin kernels"]
    assert "XNNPACK refused" in (refused_build.out / "report.md").read_text()


def test_runner_falls_back_to_the_same_numbers(refused_build):
    path = refused_build.out / refused_build.report.optimized.artifact.path
    with_xnn = open_runner(path, RunnerOptions(threads=1, xnnpack=True))
    without = open_runner(path, RunnerOptions(threads=1, xnnpack=False))
    assert (with_xnn.delegate, without.delegate) == (XNNPACK_REFUSED, "none")
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(with_xnn.run([x])[0], without.run([x])[0])
    baseline = open_runner(refused_build.out / refused_build.report.baseline.artifact.path, RunnerOptions())
    assert baseline.delegate == "xnnpack"
