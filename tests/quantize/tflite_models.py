"""Float .tflite files for the ai-edge-quantizer tests: Keras models converted by edgeopt's own float conversion
(TensorFlow in the converter's child), and the LiteRT runs the tests score them with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import SAMPLES


def float_tflite(model, path: Path) -> Path:
    from edgeopt.convert.savedmodel import temporary_saved_model
    from edgeopt.convert.tflite import float_tflite as convert

    with temporary_saved_model(model) as saved:
        path.write_bytes(convert(saved))
    return path


def digits_cnn(path: Path) -> Path:
    """sample_models/digits_cnn.keras (16x16x1 digits -> 10 softmax) as a float .tflite."""
    import keras

    return float_tflite(keras.models.load_model(SAMPLES / "digits_cnn.keras"), path)


def sine_mlp(path: Path) -> Path:
    """A 1 -> 16 -> 16 -> 1 MLP trained on sin(x), x in [0, 2 pi] (TFLite Micro's hello-world model, smaller)."""
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 2 * np.pi, (2000, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, np.sin(x), epochs=40, batch_size=64, verbose=0)
    return float_tflite(model, path)


def dense_softmax(path: Path) -> Path:
    """16 -> Dense(32) -> softmax -> Dense(8): under int16x8 TFLite Micro's SOFTMAX rounds 2 steps off LiteRT's."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16,))
    x = keras.layers.Activation("softmax")(keras.layers.Dense(32)(inp))
    return float_tflite(keras.Model(inp, keras.layers.Dense(8)(x)), path)


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """The first output of `path` in LiteRT for every row of `x` (float in, dequantized float out)."""
    from edgeopt.runtime import open_runner
    from edgeopt.runtime.tensors import from_model_output, to_model_input

    runner = open_runner(path)
    info_in, info_out = runner.inputs[0], runner.outputs[0]
    rows = [from_model_output(runner.run([to_model_input(x[i:i + 1], info_in)])[0], info_out) for i in range(len(x))]
    return np.concatenate(rows)


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.sum((ref.astype(np.float64) - got) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)


def leaky_cnn(path: Path) -> Path:
    """8x8x1 -> Conv2D -> LeakyReLU -> Conv2D -> GAP -> Dense(3): ai-edge-quantizer 0.10 cannot quantize LEAKY_RELU."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.LeakyReLU(0.1)(keras.layers.Conv2D(4, 3, padding="same")(inp))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(x))
    return float_tflite(keras.Model(inp, keras.layers.Dense(3)(x)), path)


def two_inputs(path: Path) -> Path:
    """image [8, 8, 1] and extra [4] -> concatenated -> Dense(8) -> Dense(3)."""
    import keras

    keras.utils.set_random_seed(0)
    image, extra = keras.Input((8, 8, 1), name="image"), keras.Input((4,), name="extra")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(image), extra])
    x = keras.layers.Dense(8, activation="relu")(x)
    return float_tflite(keras.Model([image, extra], keras.layers.Dense(3)(x)), path)
