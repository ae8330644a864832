"""Regenerate the sample models and their data in sample_models/.

    python sample_models/make_samples.py             # build + verify float accuracy
    python sample_models/make_samples.py --check-int8 # also full-int8 TFLite round trip

Everything is built from scikit-learn's handwritten digits (shipped inside
scikit-learn, no download). The digits (8x8, values 0..16) are upsampled to
16x16x1 by nearest-neighbour repetition (np.kron), scaled to float32 in [0, 1]
and laid out NHWC. A fixed permutation splits them into train / calib / eval.

Outputs (all written next to this file):
    digits.train.npz                 x float32 (N,16,16,1), y int64   fine-tuning
    digits_cnn.keras                 residual CNN (Conv2D+BN+ReLU, Add), uncompiled
    digits_dscnn.keras               MobileNet-style depthwise-separable CNN, uncompiled
    digits_mlp.onnx                  MLP, Keras -> tf2onnx (opset 17), input
                                     "input" [N,16,16,1], output "probs" [N,10]
    NAME.calib.npz                   x float32, 200 samples (no labels)
    NAME.eval.npz                    x float32, y int64

Determinism: seeds are fixed, TF op determinism is on and training runs on the
CPU, so the same machine + library versions give the same weights. The .npz
and .onnx files are byte-identical across reruns; the .keras zips are
rewritten with a fixed timestamp and a fixed ``date_saved`` so they are too,
as long as the weights are.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

# Must be set before TensorFlow is imported.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent
SEED = 1234
N_CALIB = 200
N_EVAL = 360
INPUT_SHAPE = (16, 16, 1)
NUM_CLASSES = 10
# Fixed timestamp written into the .keras zip entries and metadata.json.
FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
FIXED_DATE_SAVED = "2024-01-01@00:00:00"
MIN_ACCURACY = 0.95


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def load_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    labels = digits.target.astype(np.int64)
    # Nearest-neighbour 2x upsampling: every pixel becomes a 2x2 block.
    up = np.stack([np.kron(img, np.ones((2, 2), dtype=np.float32)) for img in images])
    x = up[..., np.newaxis].astype(np.float32)  # (1797, 16, 16, 1) NHWC
    assert x.shape[1:] == INPUT_SHAPE and x.min() >= 0.0 and x.max() <= 1.0

    perm = np.random.default_rng(SEED).permutation(len(x))
    eval_idx = perm[:N_EVAL]
    calib_idx = perm[N_EVAL : N_EVAL + N_CALIB]
    train_idx = perm[N_EVAL + N_CALIB :]
    return {
        "train": (x[train_idx], labels[train_idx]),
        "calib": (x[calib_idx], labels[calib_idx]),
        "eval": (x[eval_idx], labels[eval_idx]),
    }


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    for name, arr in arrays.items():
        assert arr.dtype != object, name
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # zip entries carry a fixed 1980 date
    tmp.replace(path)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def conv_bn_relu(x, filters, kernel, strides, name):
    from keras import layers

    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_cnn():
    import keras
    from keras import layers

    inp = keras.Input(shape=INPUT_SHAPE, name="input")
    # Widths are chosen so that weights dominate the file: per-channel int8
    # stores a float scale and an int64 zero point per channel, which would
    # otherwise keep the int8 artifact above 0.30 of the float one.
    x = conv_bn_relu(inp, 32, 3, 1, "stem")  # 16x16x32
    # residual block 1 (identity shortcut)
    y = conv_bn_relu(x, 32, 3, 1, "res1_a")
    y = layers.Conv2D(32, 3, padding="same", use_bias=False, name="res1_b_conv")(y)
    y = layers.BatchNormalization(name="res1_b_bn")(y)
    x = layers.Add(name="res1_add")([x, y])
    x = layers.ReLU(name="res1_out")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)  # 8x8x32
    # residual block 2 (projection shortcut, 32 -> 64 channels)
    y = conv_bn_relu(x, 64, 3, 1, "res2_a")
    y = layers.Conv2D(64, 3, padding="same", use_bias=False, name="res2_b_conv")(y)
    y = layers.BatchNormalization(name="res2_b_bn")(y)
    s = layers.Conv2D(64, 1, padding="same", use_bias=False, name="res2_proj_conv")(x)
    s = layers.BatchNormalization(name="res2_proj_bn")(s)
    x = layers.Add(name="res2_add")([s, y])
    x = layers.ReLU(name="res2_out")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)  # 4x4x64
    x = conv_bn_relu(x, 64, 3, 1, "head")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="digits_cnn")


def build_dscnn():
    import keras
    from keras import layers

    def ds_block(x, filters, strides, name):
        x = layers.DepthwiseConv2D(
            3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw"
        )(x)
        x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = layers.ReLU(name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}_pw")(x)
        x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
        return layers.ReLU(name=f"{name}_pw_relu")(x)

    inp = keras.Input(shape=INPUT_SHAPE, name="input")
    # A classifier head on the flattened 2x2x256 map carries much of the weight
    # (as MobileNet's head does); without it the per-channel quantization
    # parameters of the depthwise layers keep int8 above 0.30 of float bytes.
    x = conv_bn_relu(inp, 32, 3, 1, "stem")  # 16x16x32
    x = ds_block(x, 64, 1, "ds1")  # 16x16x64
    x = ds_block(x, 128, 2, "ds2")  # 8x8x128
    x = ds_block(x, 256, 2, "ds3")  # 4x4x256
    x = layers.MaxPooling2D(2, name="pool")(x)  # 2x2x256
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(160, activation="relu", name="fc")(x)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="digits_dscnn")


def build_mlp():
    import keras
    from keras import layers

    inp = keras.Input(shape=INPUT_SHAPE, name="input")
    x = layers.Flatten(name="flatten")(inp)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dense(64, activation="relu", name="fc2")(x)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="digits_mlp")


def train(model, data, epochs: int, lr: float, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    x, y = data["train"]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # Cosine decay applied per epoch keeps the final weights settled for quantization.
    sched = keras.callbacks.LearningRateScheduler(
        lambda e: float(lr * 0.5 * (1 + np.cos(np.pi * e / epochs)))
    )
    model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0, callbacks=[sched])
    return model


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == y))


# ---------------------------------------------------------------------------
# deterministic writers
# ---------------------------------------------------------------------------
def save_keras_deterministic(model, path: Path) -> None:
    """Save an uncompiled copy, then rewrite the zip with fixed timestamps and date_saved.

    The copy has no compile config and no optimizer state: the file is ~3x smaller,
    loads without optimizer warnings, and does not carry the last (tiny) learning
    rate of the schedule; callers that fine-tune compile it themselves.
    """
    import keras

    # from_config, not clone_model: clone_model re-compiles a compiled model.
    plain = keras.Model.from_config(model.get_config())
    plain.set_weights(model.get_weights())
    assert not plain.compiled
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / path.name
        plain.save(raw)
        buf = io.BytesIO()
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
            for name in sorted(src.namelist()):
                data = src.read(name)
                if name == "metadata.json":
                    meta = json.loads(data)
                    meta["date_saved"] = FIXED_DATE_SAVED
                    data = json.dumps(meta, sort_keys=True).encode()
                info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                dst.writestr(info, data)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def export_onnx(model, path: Path) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    @tf.function
    def serve(x):
        return model(x, training=False)

    spec = [tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=17)

    # Stable, readable output name; no doc strings; fixed producer fields.
    graph = proto.graph
    assert len(graph.output) == 1
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = ["probs" if o == old else o for o in node.output]
        node.input[:] = ["probs" if i == old else i for i in node.input]
        node.doc_string = ""
    graph.output[0].name = "probs"
    for value in (graph.input[0], graph.output[0]):  # "unk__NN" -> "batch"
        dim0 = value.type.tensor_type.shape.dim[0]
        if dim0.HasField("dim_param"):
            dim0.dim_param = "batch"
    graph.doc_string = ""
    graph.name = "digits_mlp"
    proto.doc_string = ""
    proto.producer_name = "tf2onnx"
    proto.producer_version = "1.17.0"  # pinned so bytes don't depend on the tf2onnx build
    del proto.metadata_props[:]
    onnx.checker.check_model(proto)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(proto.SerializeToString(deterministic=True))
    tmp.replace(path)


# ---------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------
def verify_keras(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    assert not model.compiled
    probs = model.predict(x, batch_size=128, verbose=0)
    return model.count_params(), accuracy(probs, y)


def verify_onnx(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert inp.name == "input" and out.name == "probs", (inp.name, out.name)
    (probs,) = sess.run(["probs"], {"input": x})
    return accuracy(probs, y)


def int8_tflite_check(path: Path, calib: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Keras -> SavedModel -> full-int8 TFLite; accuracy in LiteRT."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = keras.saving.load_model(path, safe_mode=True)
    with tempfile.TemporaryDirectory() as td:
        model.export(td, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(td)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        blob = conv.convert()
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    ind = interp.get_input_details()[0]
    outd = interp.get_output_details()[0]
    scale, zp = ind["quantization"]
    preds = []
    for i in range(len(x)):
        q = np.clip(np.round(x[i : i + 1] / scale + zp), -128, 127).astype(np.int8)
        interp.set_tensor(ind["index"], q)
        interp.invoke()
        preds.append(int(np.argmax(interp.get_tensor(outd["index"])[0])))
    return float(np.mean(np.asarray(preds) == y)), len(blob)


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-int8", action="store_true", help="also verify full-int8 TFLite")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    data = load_splits()
    x_tr, y_tr = data["train"]
    x_ca, _ = data["calib"]
    x_ev, y_ev = data["eval"]
    print(f"data: train={len(x_tr)} calib={len(x_ca)} eval={len(x_ev)} shape={x_tr.shape[1:]}")
    save_npz(OUT_DIR / "digits.train.npz", x=x_tr, y=y_tr)

    specs = [
        ("digits_cnn", build_cnn, ".keras", 20, 3e-3, SEED + 1),
        ("digits_dscnn", build_dscnn, ".keras", 20, 3e-3, SEED + 2),
        ("digits_mlp", build_mlp, ".onnx", 40, 2e-3, SEED + 3),
    ]
    rows = []
    failed = False
    for name, build, ext, epochs, lr, seed in specs:
        t = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = train(build(), data, epochs, lr, seed)
        path = OUT_DIR / f"{name}{ext}"
        if ext == ".keras":
            save_keras_deterministic(model, path)
            params, acc = verify_keras(path, x_ev, y_ev)
        else:
            export_onnx(model, path)
            params, acc = model.count_params(), verify_onnx(path, x_ev, y_ev)
        save_npz(OUT_DIR / f"{name}.calib.npz", x=x_ca)
        save_npz(OUT_DIR / f"{name}.eval.npz", x=x_ev, y=y_ev)
        size = path.stat().st_size
        row = {"name": name, "file": path.name, "params": params, "bytes": size, "acc": acc}
        msg = (
            f"{path.name:20s} params={params:6d} bytes={size:7d} "
            f"float_eval_acc={acc:.4f} ({time.perf_counter() - t:.1f}s)"
        )
        if args.check_int8 and ext == ".keras":
            acc8, size8 = int8_tflite_check(path, x_ca, x_ev, y_ev)
            row.update(int8_acc=acc8, int8_bytes=size8)
            msg += f" int8_tflite_acc={acc8:.4f} int8_bytes={size8}"
            if acc - acc8 > 0.01:
                failed = True
                msg += "  <-- int8 drop > 1 point"
        print(msg, flush=True)
        if acc <= MIN_ACCURACY or size >= 1_000_000:
            failed = True
            print(f"  FAILED: {name} must be > {MIN_ACCURACY:.0%} accurate and < 1 MB")
        rows.append(row)
        keras.backend.clear_session()

    total = sum(p.stat().st_size for p in OUT_DIR.iterdir() if p.is_file())
    print(f"total size of {OUT_DIR.name}/: {total} bytes ({time.perf_counter() - t0:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
