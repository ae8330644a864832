"""Bad input: exit 2, one line that names the problem, no traceback, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow


@pytest.fixture()
def model_copy(tmp_path: Path, samples: Path) -> Path:
    """A copy of a sample without its sibling data files."""
    dst = tmp_path / "m.keras"
    shutil.copy(samples / "digits_dscnn.keras", dst)
    return dst


def _fails(r, needle: str, out: Path | None = None) -> None:
    """Exit 2 with one error line (after any progress lines, "step..."); a fresh `out` is not created."""
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.output
    *steps, error = r.stderr.strip().splitlines()
    assert error.startswith("error: ") and needle in error, r.stderr
    assert all(line.endswith("...") for line in steps), r.stderr
    if out is not None:
        assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("keep"))


def _build(cli, model, out, *extra):
    return cli("build", model, "--target", "mobile-cpu", "--out", out, "--no-bench", *extra)


def test_missing_empty_and_corrupt_models(cli, tmp_path: Path, samples: Path):
    out = tmp_path / "out"
    _fails(_build(cli, tmp_path / "nope.keras", out), "model not found", out)
    empty = tmp_path / "e.keras"
    empty.write_bytes(b"")
    _fails(_build(cli, empty, out), "is empty", out)
    text = tmp_path / "t.keras"
    text.write_text("hello, I am not a model")
    _fails(_build(cli, text, out), "not a Keras 3 archive", out)
    data = (samples / "digits_dscnn.keras").read_bytes()
    trunc = tmp_path / "trunc.keras"
    trunc.write_bytes(data[: len(data) // 2])
    _fails(_build(cli, trunc, out), "trunc.keras", out)
    onnx_bytes = (samples / "digits_mlp.onnx").read_bytes()
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(onnx_bytes[: len(onnx_bytes) // 3])
    r = cli("build", bad_onnx, "--target", "edge-server", "--out", out, "--no-bench")
    _fails(r, "bad.onnx", out)
    bad_tfl = tmp_path / "bad.tflite"
    bad_tfl.write_bytes(b"\x00" * 64)
    _fails(_build(cli, bad_tfl, out), "not a TFLite flatbuffer", out)


def test_unknown_target(cli, tmp_path: Path, samples: Path):
    r = cli("build", samples / "digits_cnn.keras", "--target", "nonexistent", "--out", tmp_path / "o")
    _fails(r, "unknown target 'nonexistent'; available: ", tmp_path / "o")


def test_onnx_profile_for_a_tflite_refused(cli, tmp_path: Path, samples: Path):
    """An ONNX model builds for TFLite profiles (tests/pipeline/test_onnx_tflite_build.py); a .tflite never makes ONNX."""
    from edgeopt.convert.onnx2tf import convert_with_onnx2tf

    model = convert_with_onnx2tf(samples / "digits_mlp.onnx", tmp_path / "digits.tflite").tflite
    r = cli("build", model, "--target", "edge-server", "--out", tmp_path / "o", "--no-bench")
    _fails(r, "profile 'edge-server' makes ONNX; a float .tflite builds only for a TFLite profile", tmp_path / "o")


@pytest.mark.parametrize(
    "x, y, needle",
    [
        (np.zeros((10, 8, 8, 1), np.float32), None, "the model expects (N, 16, 16, 1)"),
        (np.zeros((10, 16, 16, 1), np.complex64), None, "expected numbers"),
        (np.full((10, 16, 16, 1), np.nan, np.float32), None, "NaN or Inf"),
        (np.full((10, 16, 16, 1), np.inf, np.float32), None, "NaN or Inf"),
        (np.zeros((0, 16, 16, 1), np.float32), None, "has no samples"),
    ],
)
def test_bad_calibration(cli, tmp_path: Path, model_copy: Path, x, y, needle):
    calib = tmp_path / "c.npz"
    np.savez(calib, x=x)
    _fails(_build(cli, model_copy, tmp_path / "o", "--calib", calib), needle, tmp_path / "o")


def test_bad_data_files(cli, tmp_path: Path, model_copy: Path):
    no_x = tmp_path / "nox.npz"
    np.savez(no_x, data=np.zeros((3, 16, 16, 1), np.float32))
    _fails(_build(cli, model_copy, tmp_path / "o", "--calib", no_x), "has no array 'x'", tmp_path / "o")
    pickled = tmp_path / "p.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _fails(_build(cli, model_copy, tmp_path / "o", "--calib", pickled), "cannot be read", tmp_path / "o")


def test_eval_label_count_mismatch(cli, tmp_path: Path, model_copy: Path, samples: Path):
    ev = tmp_path / "ev.npz"
    np.savez(ev, x=np.zeros((10, 16, 16, 1), np.float32), y=np.zeros(9, np.int64))
    r = _build(cli, model_copy, tmp_path / "o", "--calib", samples / "digits_dscnn.calib.npz", "--eval", ev)
    _fails(r, "9 labels for 10 samples", tmp_path / "o")


def test_unwritable_output(cli, tmp_path: Path, model_copy: Path, samples: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _build(cli, model_copy, blocker / "sub", "--calib", samples / "digits_dscnn.calib.npz")
    _fails(r, "cannot create output folder")
    assert blocker.read_text() == "x"


def test_failed_build_leaves_previous_out_untouched(cli, tmp_path: Path, model_copy: Path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.tflite").write_bytes(b"old artifact")
    empty = tmp_path / "bad.npz"
    np.savez(empty, x=np.zeros((0, 16, 16, 1), np.float32))
    _fails(_build(cli, model_copy, out, "--calib", empty), "no samples")
    assert (out / "keep.tflite").read_bytes() == b"old artifact"
    assert sorted(p.name for p in out.iterdir()) == ["keep.tflite"]


def _keras_model(kind: str):
    import keras

    if kind == "lambda":
        i = keras.Input((4,))
        o = keras.layers.Lambda(lambda t: t * 2.0, name="double_it")(i)
        return keras.Model(i, keras.layers.Dense(2)(o))
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    return keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))


def test_lambda_refused_without_unsafe_load(cli, tmp_path: Path):
    path = tmp_path / "lam.keras"
    _keras_model("lambda").save(path)
    r = cli("build", path, "--target", "mobile-cpu", "--out", tmp_path / "o", "--no-bench", "--random-calibration")
    _fails(r, "double_it", tmp_path / "o")
    assert "--unsafe-load" in r.stderr
    r = cli("build", path, "--target", "mobile-cpu", "--out", tmp_path / "o", "--no-bench", "--random-calibration", "--unsafe-load")
    assert r.exit_code == 0, r.stderr


def test_multi_input_builds_with_random_calibration(cli, tmp_path: Path):
    """Refused until several inputs went through the whole path (#13): random calibration now feeds every input."""
    import json

    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "two.keras"
    _keras_model("two").save(path)
    r = cli("build", path, "--target", "mobile-cpu", "--out", tmp_path / "o", "--no-bench", "--random-calibration",
            "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["optimized"]["artifact"]["scheme"] == "int8"
    it = Interpreter(model_path=str(tmp_path / "o" / rep["optimized"]["artifact"]["path"]))
    assert len(it.get_input_details()) == 2


def test_debug_shows_traceback(cli, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EDGEOPT_DEBUG", "0")  # restored afterwards: --debug sets it for the process
    r = cli("--debug", "build", tmp_path / "nope.keras", "--target", "mobile-cpu", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "Traceback" in r.stderr


def test_refused_during_the_build_creates_no_out(cli, tmp_path: Path, samples: Path):
    """Refusals found after the output folder was prepared (pruning without training data, an op TFLite
    Micro lacks) remove the folders the build created: nothing is left behind."""
    prune = tmp_path / "prune.toml"
    prune.write_text('extends = "mobile-cpu"\n[prune]\nratio = 0.3\n')
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('extends = "mobile-cpu"\n[cluster]\nclusters = 8\nepochs = 1\n')
    model = samples / "digits_dscnn.keras"
    for target, needle, step in ((prune, "pruning without fine-tuning loses accuracy", "pruning..."),
                                 (cluster, "[cluster] epochs > 0 needs training data", "clustering...")):
        fresh = tmp_path / "new" / target.stem / "o"
        r = cli("build", model, "--target", target, "--out", fresh, "--no-bench")
        _fails(r, needle)
        assert step in r.stderr.splitlines()
        assert not (tmp_path / "new").exists()
    import keras

    i = keras.Input((8,))
    vals, _ = keras.ops.top_k(keras.layers.Dense(6)(i), k=3)
    keras.Model(i, vals).save(tmp_path / "topk.keras")
    fresh = tmp_path / "new" / "mcu"
    r = cli("build", tmp_path / "topk.keras", "--target", "embedded-mcu", "--out", fresh, "--no-bench",
            "--random-calibration")
    _fails(r, "TFLite Micro lacks TOPK_V2")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"  # a folder that existed stays, with what it held
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    _fails(cli("build", model, "--target", prune, "--out", kept, "--no-bench"), "pruning without fine-tuning")
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]


def _lambda_models(tmp_path: Path) -> dict[str, Path]:
    """.keras files with Python lambdas that are not Lambda layers: a loss, a registered layer's function, an
    activation."""
    import warnings

    import keras

    @keras.saving.register_keras_serializable("edgeopt_test")
    class Apply(keras.layers.Layer):
        def __init__(self, fn=None, **kw):
            super().__init__(**kw)
            self.fn = fn

        def call(self, x):
            return self.fn(x)

        def get_config(self):
            return {**super().get_config(), "fn": keras.saving.serialize_keras_object(self.fn)}

        @classmethod
        def from_config(cls, config):
            return cls(**{**config, "fn": keras.saving.deserialize_keras_object(config["fn"])})

    paths = {k: tmp_path / f"{k}.keras" for k in ("loss", "layer", "activation", "lambda")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that it serializes a lambda
        i = keras.Input((4,))
        m = keras.Model(i, keras.layers.Dense(2)(i))
        m.compile(loss=lambda a, b: keras.ops.mean(a - b))
        m.save(paths["loss"])
        i = keras.Input((4,))
        keras.Model(i, Apply(lambda t: t * 3.0)(i)).save(paths["layer"])
        i = keras.Input((4,))
        keras.Model(i, keras.layers.Dense(2, activation=lambda t: t * 2.0)(i)).save(paths["activation"])
        i = keras.Input((4,))
        keras.Model(i, keras.layers.Lambda(lambda t: t * 3.0)(i)).save(paths["lambda"])
    return paths


def test_safe_mode_refusals_are_one_complete_line(cli, tmp_path: Path):
    """Issue 21 item 6: Keras's refusal was cut ("... could not be deserialized properly. Please ensure that")."""
    from edgeopt.errors import InputError, ModelFileError
    from edgeopt.load.keras_model import load_keras

    paths = _lambda_models(tmp_path)
    r = cli("inspect", paths["lambda"])
    _fails(r, f"error: {paths['lambda']}: Lambda layer(s) lambda run arbitrary Python code and are refused in safe "
              "mode; pass --unsafe-load only if you trust this file")
    assert r.stderr.strip().endswith("if you trust this file")
    assert cli("inspect", paths["lambda"], "--unsafe-load").exit_code == 0
    # a lambda in the training config (the loss) is never deserialized: models load with compile=False
    assert cli("inspect", paths["loss"]).exit_code == 0
    with pytest.raises(InputError, match="holds Python lambda code that Keras safe mode refuses to load; "
                                         "--unsafe-load loads it if you trust this file$"):
        load_keras(paths["layer"])
    assert load_keras(paths["layer"], unsafe=True).predict(np.ones((1, 4), np.float32), verbose=0)[0, 0] == 3.0
    # Keras cannot rebuild an activation lambda even unsafe: the innermost cause, its layers, no config dump
    for unsafe in (False, True):
        with pytest.raises(ModelFileError) as err:
            load_keras(paths["activation"], unsafe=unsafe)
        assert str(err.value) == (f"{paths['activation']}: cannot load the Keras model (Functional > Dense): "
                                  "Could not interpret activation function identifier")
