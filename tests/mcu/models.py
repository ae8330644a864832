"""Tiny models built in code and converted with the real TFLite converter (TensorFlow imported here only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def small_cnn(keras, shape=(16, 16, 3), classes=4):
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(classes)(x)
    return keras.Model(inp, keras.layers.Softmax()(x))


def convert(model, workdir: Path, name: str, *, int8: bool = True, io: str = "int8", samples: int = 32,
            output_io: str | None = None) -> Path:
    """SavedModel export + TFLiteConverter: full int8 (int8 or float I/O), int16x8 (io="int16") or plain float.

    `output_io` ("uint8", ...) overrides the output type of a full-int8 model, as deployed TFLM models often have.
    """
    import tensorflow as tf

    saved = workdir / f"{name}_saved"
    shape = (1, *model.inputs[0].shape[1:])  # a fixed batch of 1: no run-time shape ops for TFLM
    model.export(str(saved), format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec(shape, tf.float32)])
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if int8:
        rng = np.random.default_rng(0)
        shape = (1, *model.inputs[0].shape[1:])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.standard_normal(shape).astype(np.float32)] for _ in range(samples))
        if io == "int16":  # int16 activations, int8 weights (int16x8)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            conv.inference_input_type = tf.int16
            conv.inference_output_type = tf.int16
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        if output_io is not None:
            conv.inference_output_type = getattr(tf, output_io)
    out = workdir / f"{name}.tflite"
    out.write_bytes(conv.convert())
    return out


def wrong_per_channel_scales(src: Path, dst: Path, keep: int = 3) -> Path:
    """`src` with the first CONV_2D filter's per-channel scales cut to `keep` entries (fewer than its channels).

    TFLM's conv kernel refuses this in Prepare (scale size must be 1 or the output channels), at any arena size.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    sub = model.subgraphs[0]
    conv = next(op for op in sub.operators if model.operatorCodes[op.opcodeIndex].builtinCode == 3)  # CONV_2D
    q = sub.tensors[conv.inputs[1]].quantization
    assert len(q.scale) > keep
    q.scale, q.zeroPoint = q.scale[:keep], q.zeroPoint[:keep]
    flatbuffer_utils.write_model(model, str(dst))
    return dst


def stateful_stream(path: Path, *, frames: int = 4) -> Path:
    """A tiny streaming model, as micro-wake-word's are: int8 frames (1, 1, 8) in, uint8 (1, 2) out, two tf.Variables
    (a window of past input frames and one of past hidden vectors) read and assigned on every call, converted with
    resource variables (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE, CALL_ONCE initialising them) and the variables
    quantized to int8. The same frame fed again gives another output while the windows fill: the state is carried."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(size=(frames * 8, 8)).astype(np.float32) * 0.4)
    w2 = tf.constant(rng.normal(size=(3 * 8, 2)).astype(np.float32) * 0.6)

    class Stream(tf.Module):
        def __init__(self) -> None:
            self.frames = tf.Variable(tf.zeros([1, frames - 1, 8]), trainable=False, name="frames")
            self.hidden = tf.Variable(tf.zeros([1, 2, 8]), trainable=False, name="hidden")

        @tf.function(input_signature=[tf.TensorSpec([1, 1, 8], tf.float32)])
        def __call__(self, x):
            window = tf.concat([self.frames, x], axis=1)
            self.frames.assign(window[:, 1:, :])
            h = tf.nn.relu(tf.matmul(tf.reshape(window, [1, frames * 8]), w1))
            past = tf.concat([self.hidden, tf.reshape(h, [1, 1, 8])], axis=1)
            self.hidden.assign(past[:, 1:, :])
            return tf.sigmoid(tf.matmul(tf.reshape(past, [1, 24]), w2))

    m = Stream()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    conv.experimental_enable_resource_variables = True
    conv._experimental_variable_quantization = True  # int8 state, as micro-wake-word converts its models
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 1, 8)).astype(np.float32)] for _ in range(64))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.uint8
    Path(path).write_bytes(conv.convert())
    return Path(path)
