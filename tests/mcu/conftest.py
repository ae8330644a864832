"""Session fixtures: tiny int8 / float / unsupported-op models and tiny MCU profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def mcu_models(tmp_path_factory) -> dict[str, Path]:
    import keras

    from tests.mcu.models import convert, small_cnn, wrong_per_channel_scales

    keras.utils.set_random_seed(0)
    work = tmp_path_factory.mktemp("mcu_models")
    cnn = small_cnn(keras)
    inp = keras.Input((8,))
    vals, _ = keras.ops.top_k(keras.layers.Dense(6)(inp), k=3)
    topk = keras.Model(inp, vals)
    img = keras.Input((8, 8, 3))  # a bare int8 conv: LiteRT's optimized kernel rounds differently from TFLM
    bare = keras.Model(img, keras.layers.Conv2D(8, 3, padding="same")(img))
    bare_int8 = convert(bare, work, "bare_conv_int8")
    return {
        "int8": convert(cnn, work, "cnn_int8"),
        "float_io": convert(cnn, work, "cnn_float_io", io="float32"),
        "float": convert(cnn, work, "cnn_float", int8=False),
        "topk": convert(topk, work, "topk_float", int8=False),
        "int16x8": convert(cnn, work, "cnn_int16x8", io="int16"),
        "bare_conv": bare_int8,
        "bad_scales": wrong_per_channel_scales(bare_int8, work / "bad_scales_int8.tflite"),  # TFLM Prepare refuses it
        "uint8_out": convert(cnn, work, "cnn_uint8_out", output_io="uint8"),  # as many deployed TFLM models are
    }


def write_profile(folder: Path, name: str, mcu: str) -> Path:
    """A board profile extending embedded-mcu (written next to a copy of nothing: extends by name)."""
    path = folder / f"{name}.toml"
    path.write_text(f'extends = "embedded-mcu"\ndescription = "test board"\n\n[mcu]\n{mcu}\n')
    return path


@pytest.fixture()
def tiny_board(tmp_path: Path) -> Path:
    """A board too small for any real model: 4 KB RAM, 32 KB flash."""
    return write_profile(tmp_path, "tiny-board", 'core = "cortex-m0"\nram_kb = 4\nflash_kb = 32\nruntime_flash_kb = 30')
