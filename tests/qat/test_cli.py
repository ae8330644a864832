"""`edgeopt qat` and `edgeopt build` with QAT through the real Typer app: results, files, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.qat.cases import digits, dscnn_tail, rare_first

pytestmark = pytest.mark.tensorflow

QAT = '\n[qat]\nepochs = 3\nlearning_rate = 1e-4\n'


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("qat_cli")
    xtr, ytr, xev, yev = digits(True)
    xtr, ytr = rare_first(xtr, ytr)
    dscnn_tail().save(d / "tail.keras")
    np.savez(d / "train.npz", x=xtr, y=ytr)
    np.savez(d / "calib.npz", x=xtr[:200])
    np.savez(d / "eval.npz", x=xev, y=yev)
    np.savez(d / "nolabels.npz", x=xtr)
    np.savez(d / "fewlabels.npz", x=xtr, y=ytr[:10])
    return {"dir": d, "model": d / "tail.keras", "train": d / "train.npz", "calib": d / "calib.npz",
            "eval": d / "eval.npz", "nolabels": d / "nolabels.npz", "fewlabels": d / "fewlabels.npz"}


def _one_line_error(r: Any, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_qat_command_writes_a_model_build_converts_with_its_scales(cli, files, tmp_path: Path):
    out = tmp_path / "tail.qat.keras"
    r = cli("qat", files["model"], "--train", files["train"], "--eval", files["eval"], "--epochs", "3",
            "--out", out, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    acc = rep["accuracy"]
    assert acc["float"] - acc["ptq_int8"] > 3.0 and acc["float"] - acc["qat_int8"] <= 0.5, acc
    assert rep["epochs"] == 3 and rep["scales_from"] == "qat" and rep["runtime"] == "litert" and out.is_file()
    b = cli("build", out, "--target", "mobile-cpu", "--eval", files["eval"], "--out", tmp_path / "b", "--no-bench")
    assert b.exit_code == 0, b.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["optimized"]["artifact"]["scheme"] == "int8-qat"
    assert report["calibration"]["source"] == "none"  # nothing re-calibrated
    assert report["baseline"]["accuracy"]["value"] == pytest.approx(acc["float"], abs=0.6)
    assert report["optimized"]["accuracy"]["value"] == pytest.approx(acc["qat_int8"], abs=0.01)
    assert any("quantization-aware training" in n for n in report["notes"])


@pytest.mark.parametrize("args,needles", [
    ((), ("needs training data", "--train")),
    (("--train", "{nolabels}"), ("no labels",)),
    (("--train", "{fewlabels}"), ("10 labels for 1400 samples",)),
    (("--train", "{train}", "--epochs", "0"), ("at least 1 epoch",)),
])
def test_qat_bad_input_exit_2(cli, files, tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]):
    args = tuple(a.format(**{k: str(v) for k, v in files.items()}) for a in args)
    r = cli("qat", files["model"], *args, "--out", tmp_path / "m.qat.keras")
    _one_line_error(r, *needles)
    assert not (tmp_path / "m.qat.keras").exists()


def test_qat_names_layers_it_cannot_quantize(cli, tmp_path: Path):
    import keras

    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2DTranspose(2, 3, name="upsample")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x)))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "t.npz", x=np.zeros((8, 6, 6, 1), np.float32), y=np.zeros(8, np.int64))
    r = cli("qat", tmp_path / "m.keras", "--train", tmp_path / "t.npz", "--out", tmp_path / "o.qat.keras")
    _one_line_error(r, "cannot fake-quantize 1 layer(s)", "upsample (Conv2DTranspose")


def _profile(folder: Path, text: str) -> Path:
    path = folder / "p.toml"
    path.write_text('extends = "embedded-mcu"\ndescription = "qat test"\n' + text)
    return path


def test_mcu_build_ladder_runs_qat_and_ends_bit_exact(cli, files, tmp_path: Path):
    prof = _profile(tmp_path, '\n[budgets]\nmax_accuracy_drop = 0.5\n\n[partial]\nfallbacks = ["qat"]\n' + QAT)
    out = tmp_path / "out"
    r = cli("build", files["model"], "--target", prof, "--calib", files["calib"], "--eval", files["eval"],
            "--train", files["train"], "--out", out, "--no-bench")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    p = report["stages"]["partial"]
    assert [s["scheme"] for s in p["steps"]] == ["int8", "int8-qat"]
    assert p["steps"][0]["accuracy_drop"] > 3.0 and p["steps"][1]["accuracy_drop"] <= 0.5
    assert p["met"] is True and p["chosen"] == 1
    assert report["optimized"]["artifact"]["bytes"] == p["steps"][1]["size_bytes"]
    assert report["stages"]["mcu"]["bit_exact"] is True
    q = report["stages"]["qat"]
    assert q["role"] == "fallback" and q["epochs"] == 3 and q["scales_from"].startswith("qat")
    assert "## Quantization-aware training" in (out / "report.md").read_text()


@pytest.mark.parametrize("text,needles", [
    ('\n[budgets]\nmax_accuracy_drop = 0.5\n\n[partial]\nfallbacks = ["qat"]\n', ("names 'qat'", "no [qat] section")),
    ("\n[qat]\nepochs = 0\n", ("qat.epochs",)),
    ('\n[qat]\nlayers = "(("\n', ("not a valid regular expression",)),
])
def test_profile_naming_qat_without_sensible_settings_exit_2(cli, files, tmp_path: Path, text: str,
                                                            needles: tuple[str, ...]):
    r = cli("build", files["model"], "--target", _profile(tmp_path, text), "--calib", files["calib"],
            "--train", files["train"], "--out", tmp_path / "o", "--no-bench")
    _one_line_error(r, *needles)


def test_qat_profile_without_training_data_exit_2(cli, files, tmp_path: Path):
    r = cli("build", files["model"], "--target", _profile(tmp_path, QAT), "--calib", files["calib"],
            "--out", tmp_path / "o", "--no-bench")
    _one_line_error(r, "uses quantization-aware training", "--train")
    assert not (tmp_path / "o").exists()


def test_onnx_profile_ships_qdq_with_trained_scales(cli, files, tmp_path: Path):
    import onnx

    prof = tmp_path / "onnx-qat.toml"
    prof.write_text('extends = "edge-server"\n[budgets]\nmax_accuracy_drop = 0.5\n[qat]\nepochs = 3\nlearning_rate = 1e-4\n')
    out = tmp_path / "out"
    r = cli("build", files["model"], "--target", prof, "--calib", files["calib"], "--eval", files["eval"],
            "--train", files["train"], "--out", out, "--no-bench")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    art = report["optimized"]["artifact"]
    assert art["scheme"] == "int8-qat" and art["format"] == "onnx" and report["stages"]["qat"]["role"] == "direct"
    ops = [n.op_type for n in onnx.load(str(out / art["path"])).graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    assert report["optimized"]["accuracy"]["drop"] <= 0.5  # onnxruntime, the deployed runtime
