"""prune -> cluster -> QAT -> convert in one build: each step in the composition, the pruned MACs kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow


def _macs(path: Path) -> int:
    from edgeopt.analysis.tflite_graph import read_tflite

    return int(read_tflite(path).macs)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    from tests.qat.cases import digits

    L = keras.layers
    keras.utils.set_random_seed(0)
    xtr, ytr, xev, yev = digits(True)
    inp = keras.Input((8, 8, 1))
    h = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inp)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.ReLU(name="dw_relu")(h)
    h = L.Conv2D(32, 1, name="pw")(h)
    h = L.BatchNormalization(name="pw_bn")(h)
    h = L.ReLU(name="pw_relu")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    model = keras.Model(inp, L.Dense(10, name="logits")(h))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(xtr, ytr, epochs=10, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("compose")
    model.save(d / "m.keras")
    np.savez(d / "train.npz", x=xtr, y=ytr)
    np.savez(d / "eval.npz", x=xev, y=yev)
    np.savez(d / "calib.npz", x=xtr[:100])
    return {"model": d / "m.keras", "train": d / "train.npz", "eval": d / "eval.npz", "calib": d / "calib.npz"}


def test_prune_cluster_qat_convert(cli, small, tmp_path: Path):
    prof = tmp_path / "compose.toml"
    prof.write_text('extends = "mobile-cpu"\n[prune]\nratio = 0.5\nepochs = 2\n[cluster]\nclusters = 16\nlayers = "pw"\n'
                    '[qat]\nepochs = 2\nlearning_rate = 1e-4\n[budgets]\nmax_accuracy_drop = 10.0\n'
                    '# compression moves the outputs by design (8 dB against the uncompressed model): floors off\n'
                    'min_snr_db = false\nmin_cosine = false\n')
    out = tmp_path / "o"
    r = cli("build", small["model"], "--target", prof, "--out", out, "--train", small["train"], "--eval", small["eval"],
            "--calib", small["calib"], "--no-bench", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    st = rep["stages"]
    steps = st["composition"]["steps"]
    assert [s["stage"] for s in steps] == ["float", "prune", "cluster", "qat", "quantize"]
    assert rep["optimized"]["artifact"]["scheme"] == "int8-qat" and st["qat"]["role"] == "direct"
    assert "pw" not in st["qat"]["trained_layers"] and "stem" in st["qat"]["trained_layers"]  # clustered: kept shared
    base, opt = out / rep["baseline"]["artifact"]["path"], out / rep["optimized"]["artifact"]["path"]
    assert _macs(opt) <= 0.6 * _macs(base)  # the pruned MACs survive QAT and conversion
    acc = {s["stage"]: s["accuracy"] for s in steps}
    final = rep["optimized"]["accuracy"]["value"]
    assert acc["float"] > 95 and acc["qat"] >= acc["cluster"] - 1.0 and abs(final - acc["qat"]) <= 1.0, (acc, final)
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(opt))
    pw = [d for d in it.get_tensor_details() if d["dtype"] == np.int8 and len(d["shape"]) == 4 and d["shape"][1:3].tolist() == [1, 1]]
    assert pw and all(len(np.unique(it.get_tensor(t["index"])[c])) <= 16 for t in pw for c in range(t["shape"][0]))


def test_sparsity_then_qat_keeps_the_zeros(cli, small, tmp_path: Path):
    """[sparsity] then [qat]: QAT fine-tuning used to train the kernels densely and lose the zeros."""
    prof = tmp_path / "sparse_qat.toml"
    prof.write_text('extends = "mobile-cpu"\n[sparsity]\nsparsity = 0.6\nepochs = 1\n'
                    '[qat]\nepochs = 2\nlearning_rate = 1e-3\n[budgets]\nmax_accuracy_drop = 15.0\n'
                    '# compression moves the outputs by design (-3 dB against the dense model): floors off\n'
                    'min_snr_db = false\nmin_cosine = false\n')
    out = tmp_path / "o"
    r = cli("build", small["model"], "--target", prof, "--out", out, "--train", small["train"], "--eval", small["eval"],
            "--calib", small["calib"], "--no-bench", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    st = rep["stages"]
    assert [s["stage"] for s in st["composition"]["steps"]] == ["float", "sparsify", "qat", "quantize"]
    assert st["sparsity"]["achieved"] >= 0.59 and rep["optimized"]["artifact"]["scheme"] == "int8-qat"
    # read back from the int8 artifact: the zeros survived QAT (a dense QAT left ~0 %)
    assert st["composition"]["sparsity"] >= 0.55, st["composition"]
    from edgeopt.sparsify.artifact import weight_zeros

    opt = out / rep["optimized"]["artifact"]["path"]
    zeros = weight_zeros(opt.read_bytes())
    assert sum(z.zeros for z in zeros) / sum(z.elements for z in zeros) >= 0.55
