"""The fake-quant rewrite against the real converter and LiteRT: placement, folding, fidelity, refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgeopt.errors import UnsupportedOpError
from edgeopt.profiles.schema import IOType

pytestmark = pytest.mark.tensorflow


def _mixed_model() -> Any:
    """Residual, concat, depthwise-separable, BN folding, fused ReLU/ReLU6, hard-swish, softmax, a nested block."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(1)
    block_in = keras.Input((12, 12, 8))
    b = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="blk_dw")(block_in)
    b = L.BatchNormalization(name="blk_dw_bn")(b)
    b = L.ReLU(name="blk_dw_relu")(b)
    b = L.Conv2D(8, 1, name="blk_pw")(b)
    block = keras.Model(block_in, b, name="block")
    inp = keras.Input((12, 12, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = block(x)
    z = L.Add(name="res")([x, y])
    z = L.Activation("hard_swish", name="hswish")(z)
    z = L.MaxPooling2D(name="pool")(z)
    w = L.Conv2D(4, 1, activation="relu", name="side")(z)
    z = L.Concatenate(name="cat")([z, w])
    z = L.GlobalAveragePooling2D(name="gap")(z)
    z = L.Dense(16, activation="relu", name="fc")(z)
    out = L.Dense(5, activation="softmax", name="probs")(z)
    model = keras.Model(inp, out, name="mixed")
    for layer in (model.get_layer("stem_bn"), block.get_layer("blk_dw_bn")):  # non-trivial statistics
        n = layer.moving_mean.shape[0]
        rng = np.random.default_rng(n)
        layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), rng.normal(0, 0.5, n), rng.uniform(0.3, 3, n)])
    return model


@pytest.fixture(scope="module")
def mixed() -> Any:
    return _mixed_model()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(96, 12, 12, 3)).astype(np.float32)


def test_placement_follows_the_int8_graph(mixed):
    from edgeopt.qat.wrap import quantize_model

    q = quantize_model(mixed)
    kinds = {layer.name: type(layer).__name__ for layer in q.model.layers}
    assert q.folded_bn == ("stem_bn", "blk_dw_bn")
    # fused activations carry their producer's quantizer; a concat input takes the concat's scale
    assert {"stem", "blk_dw", "side"} <= set(q.unquantized)
    quantizers = sorted(n for n, k in kinds.items() if k == "ActQuant")
    assert quantizers == sorted(["image_quant", "stem_relu_quant", "blk_dw_relu_quant", "blk_pw_quant", "res_quant",
                                 "hswish_quant", "cat_quant", "gap_quant", "fc_quant", "probs_pre_quant", "probs_quant"])
    assert sum(k == "QuantConv" for k in kinds.values()) == 6  # stem, blk_dw, blk_pw, side, fc, probs
    assert "stem_bn" not in kinds and "pool" in kinds  # BN folded away; pooling keeps its input's scale
    assert q.model.get_layer("probs_quant").fixed == (0.0, 255.0 / 256.0)  # TFLite softmax grid 1/256, zp -128


def test_folded_float_model_equals_the_original(mixed, images):
    from edgeopt.qat.wrap import quantize_model, strip_model

    plain = strip_model(quantize_model(mixed).model)
    np.testing.assert_allclose(plain.predict(images, verbose=0), mixed.predict(images, verbose=0), atol=2e-5)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in plain.layers)


def _run_int8(data: bytes, x: np.ndarray) -> tuple[np.ndarray, Any]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = i["quantization"], o["quantization"]
    out = []
    for s in x:
        v = s[None] if i["dtype"] == np.float32 else np.clip(np.round(s[None] / si + zi), -128, 127).astype(np.int8)
        it.set_tensor(i["index"], v)
        it.invoke()
        r = it.get_tensor(o["index"]).astype(np.float32)
        out.append(r if o["dtype"] == np.float32 else (r - zo) * so)
    return np.concatenate(out), it


def test_int8_artifact_uses_the_trained_ranges_and_matches_the_fake_quant_model(mixed, images):
    from edgeopt.qat.export import qat_tflite
    from edgeopt.qat.wrap import quantize_model

    q = quantize_model(mixed).model
    for i in range(0, 96, 32):
        q(images[i : i + 32], training=True)  # ranges from these batches
    data = qat_tflite(q, IOType.INT8, IOType.INT8)
    got, it = _run_int8(data, images[:32])
    ops = {d["op_name"] for d in it._get_ops_details()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "HARD_SWISH", "CONCATENATION", "MEAN", "FULLY_CONNECTED",
            "SOFTMAX"} <= ops and "DEQUANTIZE" not in ops
    dtypes = {d["dtype"] for d in it.get_tensor_details()}
    assert dtypes <= {np.int8, np.int32}, dtypes  # full integer: no float tensor left
    inp = it.get_input_details()[0]
    aq = q.get_layer("image_quant")
    lo, hi = float(aq.range_min.numpy()), float(aq.range_max.numpy())
    assert inp["quantization"][0] == pytest.approx((hi - lo) / 255, rel=2e-3)  # the trained input range
    want = q.predict(images[:32], verbose=0)
    assert np.abs(got - want).max() <= 3 / 256 + 1e-6  # within 3 steps of the 1/256 output grid
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_dense_ships_per_channel_weights_as_trained(mixed, images):
    from edgeopt.qat.export import qat_tflite
    from edgeopt.qat.wrap import quantize_model

    q = quantize_model(mixed).model
    q(images[:32], training=True)
    _, it = _run_int8(qat_tflite(q), images[:1])
    fc = np.asarray(q.get_layer("fc").kernel)
    want = np.abs(fc).max(axis=0) / 127
    weights = [d for d in it.get_tensor_details() if tuple(d["shape"]) == (16, fc.shape[0]) and d["dtype"] == np.int8]
    assert len(weights) == 1
    scales = weights[0]["quantization_parameters"]["scales"]
    np.testing.assert_allclose(scales, want, rtol=1e-5)
    assert len(set(np.round(scales, 9))) > 1  # really per channel, not one shared scale
    np.testing.assert_allclose(it.get_tensor(weights[0]["index"]) * scales[:, None], fc.T, atol=float(want.max()) / 2 + 1e-6)


def test_sequential_and_per_tensor():
    import keras

    from edgeopt.qat.export import qat_tflite
    from edgeopt.qat.wrap import quantize_model

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu6"),
                              keras.layers.Flatten(), keras.layers.Dropout(0.2), keras.layers.Dense(3)])
    q = quantize_model(model, per_channel=False)
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    q.model(x, training=True)
    _, it = _run_int8(qat_tflite(q.model), x[:1])
    conv_w = [d for d in it.get_tensor_details() if tuple(d["shape"]) == (4, 3, 3, 1)]
    assert len(set(conv_w[0]["quantization_parameters"]["scales"])) == 1  # one scale for the tensor


def test_layers_without_an_int8_rule_are_named():
    import keras

    L = keras.layers
    inp = keras.Input((8, 8, 2))
    x = L.Conv2DTranspose(2, 3, name="up")(inp)
    x = L.Conv2D(2, 3, activation="relu", name="c")(x)
    x = L.BatchNormalization(name="late_bn")(x)  # after an activation: cannot be folded
    x = L.Multiply(name="gate")([x, x])
    model = keras.Model(inp, L.LayerNormalization(name="ln")(x))
    from edgeopt.qat.wrap import quantize_model

    with pytest.raises(UnsupportedOpError) as exc:
        quantize_model(model)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("cannot fake-quantize 4 layer(s)")
    for name in ("up (Conv2DTranspose", "gate (Multiply", "ln (LayerNormalization", "late_bn (BatchNormalization"):
        assert name in msg
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("freeze_after,moves", [(0, False), (2, True)])
def test_freeze_bn_after(freeze_after: int, moves: bool):
    import keras

    from edgeopt.qat.train import QatSpec, train_qat

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="c")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(2, name="d")(keras.layers.Flatten()(keras.layers.ReLU()(x)))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    x_train = (rng.normal(size=(64, 6, 6, 1)) * 3 + 1).astype(np.float32)  # statistics far from the BN's (0, 1)
    y_train = rng.integers(0, 2, 64)
    r = train_qat(model, QatSpec(epochs=2, freeze_bn_after=freeze_after, learning_rate=1e-3), x_train, y_train)
    q = r.model.get_layer("c")
    assert r.folded_bn == ("bn",) and q.bn
    moved = not np.allclose(np.asarray(q.moving_variance), np.asarray(model.get_layer("bn").moving_variance))
    assert moved is moves
    assert float(q.bn_frozen.numpy()) == 1.0  # frozen once training is over


def test_onnx_qdq_carries_the_trained_scales(mixed, images):
    import onnx
    import onnxruntime as ort

    from edgeopt.qat.onnx_export import qat_onnx
    from edgeopt.qat.wrap import quantize_model

    q = quantize_model(mixed).model
    for i in range(0, 96, 32):
        q(images[i : i + 32], training=True)
    data = qat_onnx(q)
    g = onnx.load_from_string(data).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("QuantizeLinear") == 11  # one per activation quantizer, none re-calibrated
    assert ops.count("DequantizeLinear") == 11 + 6  # ... and one per int8 weight (4 Conv, 2 MatMul)
    inits = {i.name: i for i in g.initializer}
    assert sum(i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2 for i in inits.values()) == 6
    aq = q.get_layer("image_quant")
    lo, hi = float(aq.range_min.numpy()), float(aq.range_max.numpy())
    first_q = next(n for n in g.node if n.op_type == "QuantizeLinear")
    scale = onnx.numpy_helper.to_array(inits[first_q.input[1]])
    assert float(scale) == pytest.approx((hi - lo) / 255, rel=2e-3)  # the input's trained range
    sess = ort.InferenceSession(data)
    got = sess.run(None, {sess.get_inputs()[0].name: images[:32]})[0]
    np.testing.assert_allclose(got, q.predict(images[:32], verbose=0), atol=2 / 256)
