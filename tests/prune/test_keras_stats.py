"""MACs and params per layer match hand-computed values."""

import pytest

from edgeopt.analysis.keras_stats import keras_model_stats

pytestmark = pytest.mark.tensorflow


def test_macs_by_layer_type(keras):
    L = keras.layers
    i = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, name="conv")(i)  # 8x8 out
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.SeparableConv2D(4, 3, depth_multiplier=2, name="sep")(x)  # 6x6 out
    x = L.BatchNormalization(name="bn")(x)
    x = L.Flatten()(x)
    o = L.Dense(5, name="fc")(x)
    model = keras.Model(i, o)
    s = keras_model_stats(model)
    assert s.layer("conv").macs == 8 * 8 * 3 * 3 * 3 * 8
    assert s.layer("dw").macs == 8 * 8 * 9 * 8
    assert s.layer("sep").macs == 6 * 6 * 9 * 16 + 6 * 6 * 16 * 4
    assert s.layer("bn").macs == 0
    assert s.layer("fc").macs == 144 * 5
    assert s.layer("sep").output_shape == (6, 6, 4) and s.layer("sep").channels == 4
    assert s.params == model.count_params()
    assert s.macs == sum(layer.macs for layer in s.layers)


def test_nested_and_conv1d(keras):
    L = keras.layers
    inner = keras.Sequential([keras.Input((16, 4)), L.Conv1D(6, 3, name="c1d")], name="inner")
    i = keras.Input((16, 4))
    o = L.Dense(2, name="fc")(inner(i))  # Dense on (14, 6): 14 positions
    s = keras_model_stats(keras.Model(i, o))
    assert s.layer("c1d").macs == 14 * 3 * 4 * 6
    assert s.layer("fc").macs == 14 * 6 * 2
    assert s.params == (3 * 4 * 6 + 6) + (6 * 2 + 2)


def test_analysis_imports_without_tensorflow():
    import subprocess
    import sys

    code = ("import sys, edgeopt.analysis.keras_stats, edgeopt.prune; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
