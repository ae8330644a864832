"""Issue 21 item 1: the model's own code runs in a confined child (edgeopt.sandbox, edgeopt.confine).

`--unsafe-load` skips the op scan, so these SavedModels run: whatever they try, no file appears outside the
build's private staging folder, an endless graph is stopped at its time limit, and Ctrl-C ends the build.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgeopt.confine import Confinement, abi_version, preexec
from tests.robustness.conftest import ROOT, edgeopt, error_line

pytestmark = [pytest.mark.tensorflow, pytest.mark.skipif(abi_version() < 4, reason="needs Landlock ABI 4 (Linux 6.7)")]  # CI's kernel has 7


def _saved_model(folder, body):
    """A tf.Module SavedModel whose serving function also runs `body(x)`."""
    import tensorflow as tf

    class M(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([4, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            x = body(x)
            return tf.matmul(x, self.w)

    m = M()
    tf.saved_model.save(m, str(folder), signatures={"serving_default": m.__call__})
    return folder


def _eval(tmp_path):
    np.savez(tmp_path / "ev.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.arange(8) % 2)
    return tmp_path / "ev.npz"


@pytest.mark.parametrize("op", ["write_file", "save_v2"])
def test_unsafe_load_still_writes_nothing_outside_the_sandbox(tmp_path, op):
    import tensorflow as tf

    planted = tmp_path / "victim" / "PWNED"
    planted.parent.mkdir()

    def body(x):
        if op == "write_file":
            w = tf.io.write_file(str(planted), "pwned")
        else:
            w = tf.raw_ops.SaveV2(prefix=str(planted), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
        with tf.control_dependencies([w]):
            return tf.identity(x)

    model = _saved_model(tmp_path / "evil", body)
    r = edgeopt("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--random-calibration",
                "--eval", _eval(tmp_path), "--no-bench", "--unsafe-load")
    line = error_line(r)
    assert "Permission denied" in line or "permission" in line.lower(), line
    assert not planted.exists() and list(planted.parent.iterdir()) == []
    assert not (tmp_path / "out").exists()  # the --out this build created is gone with its staging folder


@pytest.fixture(scope="module")
def endless(tmp_path_factory):
    """One SavedModel with an endless loop for the time-limit and Ctrl-C tests (built once: TensorFlow's work)."""
    return _endless(tmp_path_factory.mktemp("endless"))


def _endless(tmp_path):
    import tensorflow as tf

    def body(x):
        return tf.while_loop(lambda i, v: tf.constant(True), lambda i, v: (i + 1, v), [tf.constant(0), x])[1]

    return _saved_model(tmp_path / "endless", body)


def test_an_endless_graph_is_stopped_at_its_time_limit(endless, tmp_path):
    model = endless
    started = time.monotonic()
    # 15 s: the limit also times loading the SavedModel (a few seconds), then the endless float reference
    r = edgeopt("build", model, "--target", "mobile-cpu", "--out", tmp_path / "out", "--random-calibration",
                "--eval", _eval(tmp_path), "--no-bench", "--unsafe-load", env_extra={"EDGEOPT_MODEL_TIMEOUT": "15"},
                timeout=240)
    line = error_line(r)
    assert "did not finish in 15 s" in line and "EDGEOPT_MODEL_TIMEOUT" in line, line
    assert line.startswith("error: the float model's outputs on the eval data did not finish"), line
    assert time.monotonic() - started < 200
    assert not (tmp_path / "out").exists()


def test_ctrl_c_ends_a_build_stuck_in_model_code(endless, tmp_path):
    model = endless
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edgeopt", "build", str(model), "--target", "mobile-cpu",
                             "--out", str(tmp_path / "out"), "--random-calibration", "--eval", str(_eval(tmp_path)),
                             "--no-bench", "--unsafe-load"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    deadline = time.monotonic() + 180
    seen = ""
    while "validating" not in seen and "loading" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline().decode()
    time.sleep(15)  # well into the endless loop (TensorFlow's import and the load take a few seconds)
    assert proc.poll() is None, seen
    os.killpg(os.getpgid(proc.pid), signal.SIGINT) if os.getpgid(proc.pid) != os.getpgid(0) else proc.send_signal(
        signal.SIGINT)
    stopped = time.monotonic()
    proc.wait(timeout=30)
    assert proc.returncode == 130, proc.stderr.read().decode()
    assert time.monotonic() - stopped < 10
    assert not (tmp_path / "out").exists()


def test_confinement_allows_only_the_named_folder(tmp_path):
    """The primitive itself: a confined program writes inside its folder, nowhere else, and opens no TCP."""
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    script = (f"open('{inside}/a', 'w').write('x')\n"
              f"try:\n    open('{outside}/b', 'w')\nexcept PermissionError:\n    print('write refused')\n"
              "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=2)\n"
              "except PermissionError:\n    print('tcp refused')\nexcept OSError as e:\n    print('tcp other', e)\n")
    r = subprocess.run([sys.executable, "-c", script], preexec_fn=preexec(Confinement(writable=(inside,))),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["write", "refused", "tcp", "refused"]
    assert (inside / "a").read_text() == "x" and list(outside.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["prune", "--ratio", "0.5", "--no-finetune"],
    ["cluster", "-k", "4"],
    ["sparsify", "-s", "0.5", "--no-finetune", "--no-measure"],
    ["inspect"],
])
def test_other_commands_load_the_model_confined(tmp_path, command):
    """prune, cluster, sparsify and inspect load Keras models in the sandbox too: a Lambda whose Python code
    writes a file (it runs while Keras rebuilds the model) is refused, the command ends with one line, and no
    --out and no staging folder is left. Without the sandbox (EDGEOPT_SANDBOX=off) the same command writes it."""
    import keras

    planted = tmp_path / "victim" / "PWNED"
    planted.parent.mkdir()
    inp = keras.Input((4,))
    x = keras.layers.Lambda(eval(f"lambda t: (open({str(planted)!r}, 'w').write('pwned'), t)[1]"))(inp)
    planted.unlink()  # building the model here ran the lambda once
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(8)(x))).save(tmp_path / "m.keras")
    (tmp_path / "work").mkdir()
    args = [command[0], tmp_path / "m.keras", *command[1:], "--unsafe-load"]
    if command[0] != "inspect":
        args += ["--out", tmp_path / "work" / "out.keras"]
    r = edgeopt(*args, timeout=240)
    line = error_line(r)
    assert "refused by the sandbox" in line, line
    assert not planted.exists()
    assert list((tmp_path / "work").iterdir()) == []  # neither out.keras nor a staging folder
    r = edgeopt(*args, timeout=240, env_extra={"EDGEOPT_SANDBOX": "off"})
    assert planted.exists(), (r.returncode, r.stderr)  # the control: the file's code does write when unconfined
