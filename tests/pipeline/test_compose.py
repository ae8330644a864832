"""prune -> cluster -> quantize in one build, and the `prune` / `inspect --sensitivity` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def test_prune_cluster_quantize_in_one_build(cli, tmp_path: Path, samples: Path):
    prof = tmp_path / "compose.toml"
    prof.write_text('extends = "mobile-cpu"\n[prune]\nmacs_reduction = 0.3\nepochs = 2\n'
                    '[cluster]\nclusters = 16\n[budgets]\nmax_accuracy_drop = 30.0\n')
    r = cli("build", samples / "digits_dscnn.keras", "--target", prof, "--out", tmp_path / "o",
            "--train", samples / "digits.train.npz", "--no-bench", "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    st = rep["stages"]
    assert [s["stage"] for s in st["steps"]] == ["float", "prune", "cluster"]
    assert st["prune"]["macs_reduction"] >= 0.29 and st["prune"]["finetuned"] is True
    assert st["prune"]["macs_after"] < st["prune"]["macs_before"]
    assert all(layer["unique_after"] <= 16 for layer in st["cluster"]["layers"])
    comp = st["composition"]
    assert comp["quantization_bit_ratio"] == "32/8" and comp["pruning_ratio"] > 1.2
    assert comp["compression_ratio"] == pytest.approx(rep["baseline"]["artifact"]["bytes"] / rep["optimized"]["artifact"]["bytes"])
    assert set(comp["accuracy_after"]) == {"float", "prune", "cluster", "quantize"}
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## Composition" in md and "## Pruning" in md and "## Weight sharing" in md
    assert rep["optimized"]["accuracy"]["drop"] == pytest.approx(comp["accuracy_after"]["float"] - comp["accuracy_after"]["quantize"])


def test_prune_command_and_bad_input(cli, tmp_path: Path, samples: Path):
    model = samples / "digits_cnn.keras"
    out = tmp_path / "p.keras"
    r = cli("prune", model, "--ratio", "1.5", "--out", out)
    assert r.exit_code == 2 and "--ratio must be in [0, 1)" in r.stderr and not out.exists()
    r = cli("prune", model, "--macs-reduction", "0.99", "--round-to", "32", "--no-finetune", "--out", out)
    assert r.exit_code == 2 and "largest reachable" in r.stderr and not out.exists()
    r = cli("prune", samples / "digits_mlp.onnx", "--ratio", "0.5", "--out", out)
    assert r.exit_code == 2 and "needs a Keras model" in r.stderr
    r = cli("prune", model, "--ratio", "0.5", "--out", out)
    assert r.exit_code == 2 and "--no-finetune" in r.stderr and not out.exists()
    r = cli("prune", model, "--ratio", "0.25", "--ignore", "nothing_.*", "--no-finetune", "--round-to", "8",
            "--out", out, "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert "nothing_.*" in r.stderr and any("nothing_.*" in w for w in rep["warnings"])
    assert rep["params_after"] < rep["params_before"] and rep["macs_after"] < rep["macs_before"]
    assert all(g["channels_after"] % 8 == 0 for g in rep["groups"])
    r = cli("inspect", out, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["params"] == rep["params_after"]


def test_sensitivity_table(cli, samples: Path, tmp_path: Path):
    r = cli("inspect", samples / "digits_mlp.onnx", "--sensitivity")
    assert r.exit_code == 2 and "needs calibration data" in r.stderr
    r = cli("inspect", samples / "digits_mlp.onnx", "--sensitivity", "--calib", samples / "digits_mlp.calib.npz", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["layers"]
    assert len(rows) >= 3 and all(np.isfinite(x["snr_db"]) and x["rmse"] >= 0 for x in rows)
    assert sum(x["macs_share"] for x in rows) == pytest.approx(1.0, abs=0.02)
