"""Issue 21 item 1: a SavedModel loads only when every op is on the allowlist (edgeopt/load/saved_model_allowlist.py);
checkpoint ops only in the saver's own functions, found from the saver's call target alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.errors import InputError
from tests.robustness.conftest import ROOT

pytestmark = pytest.mark.tensorflow


def _saved_model(folder, body):
    """A tf.Module SavedModel (one variable, serving_default) whose function also runs `body(x)`."""
    import tensorflow as tf

    class M(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([4, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            body(x)
            return tf.matmul(x, self.w)

    m = M()
    tf.saved_model.save(m, str(folder), signatures={"serving_default": m.__call__})
    return folder


def _edit(folder, change):
    """Rewrite `folder/saved_model.pb` with `change(meta_graph)` applied (raw protobuf editing)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = folder / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(pb.read_bytes())
    change(sm.meta_graphs[0])
    pb.write_bytes(sm.SerializeToString())


def _refused(folder):
    from tensorflow.core.protobuf import saved_model_pb2

    from edgeopt.load.saved_model_ops import refused_ops

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((folder / "saved_model.pb").read_bytes())
    return refused_ops(sm)


def _saver_trick(meta):
    """The hostile review's model: the restore node carries an extra function-valued attribute for every library
    function, and the top-level call nodes of the signatures are gone (TF2 loads signatures from the object graph)."""
    graph = meta.graph_def
    restore = next(n for n in graph.node if n.name == meta.saver_def.restore_op_name)
    for i, func in enumerate(graph.library.function):
        restore.attr[f"extra_{i}"].func.name = func.signature.name
    saver = {meta.saver_def.restore_op_name, meta.saver_def.save_tensor_name.split(":")[0]}
    keep = [n for n in graph.node if n.name in saver or not any(v.HasField("func") for v in n.attr.values())]
    del graph.node[:]
    graph.node.extend(keep)


def _one_error_line(r) -> str:
    """The one line of a refused in-process command: exit 2, no traceback."""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 2 and len(errors) == 1 and "Traceback" not in r.stderr, (r.exit_code, r.stderr)
    return errors[0]


def test_saver_attribute_trick_is_refused_and_nothing_is_written(cli, tmp_path):
    import tensorflow as tf

    planted = tmp_path / "PWNED"
    model = _saved_model(tmp_path / "evil", lambda x: tf.raw_ops.Save(filename=str(planted), tensor_names=["x"],
                                                                       data=[x]))
    _edit(model, _saver_trick)
    np.savez(tmp_path / "ev.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.arange(8) % 2)
    r = cli("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--random-calibration",
            "--eval", tmp_path / "ev.npz", "--no-bench")
    line = _one_error_line(r)
    assert "function '__inference___call___" in line and "uses op Save (checkpoint file I/O" in line, line
    assert "--unsafe-load skips this scan" in line and "if you trust this file" in line, line
    assert not planted.exists() and not (tmp_path / "out").exists()


def test_function_the_saver_calls_is_model_code_when_a_signature_runs_it(tmp_path):
    """The restore node's own `f` pointed at the serving function: reachable from both, so not saver-only."""
    import tensorflow as tf

    target = str(tmp_path / "read")
    model = _saved_model(tmp_path / "m", lambda x: tf.raw_ops.RestoreV2(
        prefix=target, tensor_names=["x"], shape_and_slices=[""], dtypes=[tf.float32]))

    def restore_calls_serving(meta):
        serving = next(f.signature.name for f in meta.graph_def.library.function
                       if f.signature.name.startswith("__inference___call__"))
        restore = next(n for n in meta.graph_def.node if n.name == meta.saver_def.restore_op_name)
        restore.attr["f"].func.name = serving

    _edit(model, restore_calls_serving)
    found = _refused(model)
    assert [p.split(" (")[0] for w, p in found if "__call__" in w] == ["RestoreV2"], found


def test_call_of_an_op_by_name_is_refused(tmp_path):
    """A call node whose `f` names no library function makes TensorFlow run the op of that name: refused."""

    def call_write_file(meta):
        serving = next(f for f in meta.graph_def.library.function if f.signature.name.startswith("__inference___call__"))
        call = next(n for n in serving.node_def if n.op == "MatMul")
        call.attr["extra"].func.name = "WriteFile"

    model = _saved_model(tmp_path / "m", lambda x: None)
    _edit(model, call_write_file)
    from edgeopt.load.saved_model_ops import check_saved_model

    with pytest.raises(InputError, match=r"uses op MatMul \(calls 'WriteFile', which is not a function of the "):
        check_saved_model(model)


def test_graph_serialized_in_a_string_is_refused(tmp_path):
    """DatasetFromGraph runs a GraphDef held in a string (here one that writes a file): the scan cannot see it."""
    import tensorflow as tf

    from edgeopt.load.saved_model_ops import check_saved_model

    planted = tmp_path / "PWNED"
    inner = tf.Graph()
    with inner.as_default():
        tf.raw_ops.WriteFile(filename=str(planted), contents="pwned")
    serialized = inner.as_graph_def().SerializeToString()
    model = _saved_model(tmp_path / "dfg", lambda x: tf.raw_ops.DatasetFromGraph(graph_def=tf.constant(serialized)))
    with pytest.raises(InputError) as err:
        check_saved_model(model)
    line = str(err.value)
    assert "uses op DatasetFromGraph (runs a graph or program serialized in a string, which a scan cannot see into)" \
        in line and "--unsafe-load" in line and "\n" not in line, line
    assert not planted.exists()


@pytest.mark.parametrize("op", ["CSVDatasetV2", "MatchingFilesDataset", "SnapshotChunkDataset", "RecordInput",
                                "DecodeProtoV2"])
def test_file_reading_ops_the_denylist_missed_are_refused(tmp_path, op):
    import tensorflow as tf

    from edgeopt.load.saved_model_ops import check_saved_model

    path = str(tmp_path / "f")
    body = {
        "CSVDatasetV2": lambda x: tf.data.experimental.CsvDataset(path, [tf.float32]),
        "MatchingFilesDataset": lambda x: tf.raw_ops.MatchingFilesDataset(patterns=[path + "*"]),
        "SnapshotChunkDataset": lambda x: tf.raw_ops.SnapshotChunkDataset(chunk_file=path, output_types=[tf.float32],
                                                                          output_shapes=[[]]),
        "RecordInput": lambda x: tf.raw_ops.RecordInput(file_pattern=path + "*"),
        "DecodeProtoV2": lambda x: tf.io.decode_proto(tf.constant([b""]), "a.B", ["c"], [tf.int32],
                                                      descriptor_source=path),
    }[op]
    model = _saved_model(tmp_path / op, body)
    with pytest.raises(InputError, match=rf"function '__inference___call___\d+' uses op {op} \((a tf.data op|can read)"):
        check_saved_model(model)


def _rnn_attention_model():
    """Embedding -> LSTM -> GRU -> multi-head attention -> Dense: the ops Keras writes for sequence models."""
    import keras

    tokens = keras.Input((10,), dtype="int32", name="tokens")
    y = keras.layers.Embedding(50, 8)(tokens)
    y = keras.layers.LSTM(8, return_sequences=True)(y)
    y = keras.layers.GRU(8, return_sequences=True)(y)
    y = keras.layers.MultiHeadAttention(2, 4)(y, y)
    y = keras.layers.GlobalAveragePooling1D()(y)
    return keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(y))


def _augmentation_model():
    """Augmentation layers (identity at inference) write random-number and image-transform ops into the export."""
    import keras

    images = keras.Input((16, 16, 1), name="images")
    y = keras.layers.RandomFlip()(images)
    y = keras.layers.RandomRotation(0.1)(y)
    y = keras.layers.RandomContrast(0.1)(y)
    y = keras.layers.GaussianNoise(0.1)(y)
    y = keras.layers.Conv2D(4, 3)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(images, keras.layers.Dense(3)(y))


@pytest.mark.parametrize("name", ["digits_cnn", "digits_dscnn", "rnn_attention", "augmentation"])
def test_keras_saved_models_pass_the_scan_and_load(tmp_path, name):
    """Every Keras sample model, a sequence model (Embedding, LSTM, GRU, attention) and augmentation layers still
    load, with the same numbers."""
    import keras

    from edgeopt.load.keras_model import load_keras

    if name == "rnn_attention":
        model = _rnn_attention_model()
        x = np.random.default_rng(0).integers(0, 50, (4, 10)).astype(np.int32)
    elif name == "augmentation":
        model = _augmentation_model()
        x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    else:
        model = keras.saving.load_model(ROOT / "sample_models" / f"{name}.keras")
        x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    path = tmp_path / name
    model.export(str(path), format="tf_saved_model", verbose=False)
    assert _refused(path) == []
    loaded = load_keras(path)  # scans first
    got, want = loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    if name == "augmentation":  # Keras's export applies the random layers when served: same shape, finite
        assert got.shape == want.shape and np.isfinite(got).all()
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_attention_saved_model_builds(cli, tmp_path):
    """An Embedding + attention SavedModel builds end to end (float16: int8 calibration of an integer input is
    refused by design; a recurrent SavedModel fails in the TFLite converter, scan or not)."""
    import keras

    tokens = keras.Input((10,), dtype="int32", name="tokens")
    y = keras.layers.Embedding(50, 8)(tokens)
    y = keras.layers.MultiHeadAttention(2, 4)(y, y)
    y = keras.layers.GlobalAveragePooling1D()(y)
    path = tmp_path / "seq"
    keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(y)).export(str(path), format="tf_saved_model",
                                                                               verbose=False)
    prof = tmp_path / "f16.toml"
    prof.write_text('extends = "mobile-cpu"\n[quantize]\nscheme = "float16"\n')
    r = cli("build", path, "--target", prof, "--out", tmp_path / "o", "--no-bench", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["optimized"]["artifact"]["scheme"] == "float16"
    assert (tmp_path / "o" / "seq.tflite").stat().st_size > 0
