"""Item 1 of issue 12: a SavedModel whose graph touches the file system is refused before TensorFlow runs it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import InputError
from tests.robustness.conftest import edgeopt, error_line

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


def test_write_file_in_a_saved_model_is_refused_and_nothing_is_written(tmp_path):
    import tensorflow as tf

    planted = tmp_path / "PWNED"
    model = _saved_model(tmp_path / "evil", lambda x: tf.io.write_file(str(planted), "pwned"))
    np.savez(tmp_path / "ev.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.arange(8) % 2)
    r = edgeopt("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--random-calibration",
                "--eval", tmp_path / "ev.npz", "--no-bench")
    line = error_line(r)
    assert "WriteFile" in line and "--unsafe-load" in line, r.stderr
    assert not planted.exists()
    assert not (tmp_path / "out").exists()  # refused before the output folder was made


@pytest.mark.parametrize("kind", ["read_file", "matching_files", "print_to_file", "save_v2"])
def test_other_side_effecting_ops_are_named(tmp_path, kind):
    import tensorflow as tf

    from edgeopt.load.saved_model_ops import check_saved_model

    target = str(tmp_path / "f.txt")
    body = {
        "read_file": lambda x: tf.io.read_file(target),
        "matching_files": lambda x: tf.io.matching_files(target),
        "print_to_file": lambda x: tf.print(x, output_stream="file://" + target),
        "save_v2": lambda x: tf.raw_ops.SaveV2(prefix=target, tensor_names=["x"], shape_and_slices=[""], tensors=[x]),
    }[kind]
    op = {"read_file": "ReadFile", "matching_files": "MatchingFiles", "print_to_file": "PrintV2",
          "save_v2": "SaveV2"}[kind]
    model = _saved_model(tmp_path / kind, body)
    with pytest.raises(InputError, match=rf"uses op {op} \("):
        check_saved_model(model)


def test_plain_saved_model_with_variables_passes(tmp_path):
    """Every SavedModel with variables carries SaveV2/RestoreV2 in its saver functions: those are allowed."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    from edgeopt.load.saved_model_ops import check_saved_model, refused_ops

    model = _saved_model(tmp_path / "ok", lambda x: tf.print(x))  # PrintV2 to stderr is harmless
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model / "saved_model.pb").read_bytes())
    ops = {n.op for m in sm.meta_graphs for f in m.graph_def.library.function for n in f.node_def}
    assert {"SaveV2", "RestoreV2", "PrintV2"} <= ops  # the saver machinery is there ...
    assert refused_ops(sm) == []  # ... and is not model code
    check_saved_model(model)
