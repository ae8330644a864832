"""prune -> cluster -> quantize in one build, and the `prune` / `inspect --sensitivity` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeopt.report.schema import ClusterStage, Composition, PruneStage, Report

pytestmark = pytest.mark.tensorflow


def test_prune_cluster_quantize_in_one_build(cli, tmp_path: Path, samples: Path):
    prof = tmp_path / "compose.toml"
    prof.write_text('extends = "mobile-cpu"\n[prune]\nmacs_reduction = 0.3\nepochs = 2\n'
                    '[cluster]\nclusters = 16\n[budgets]\nmax_accuracy_drop = 30.0\n')
    # mobile-cpu's floors (min_snr_db 6 dB, min_cosine 0.9) are inherited: compression measured 9 dB here, and a
    # compressing build leaves the floors to max_accuracy_drop (with a note) instead of failing
    r = cli("build", samples / "digits_dscnn.keras", "--target", prof, "--out", tmp_path / "o",
            "--train", samples / "digits.train.npz", "--no-bench", "--json")
    assert r.exit_code == 0, r.stderr
    rep = Report.model_validate_json(r.stdout)  # the typed sections, as published in docs/report.schema.json
    assert any("accuracy floors (min_snr_db, min_cosine) are not checked" in n for n in rep.notes), rep.notes
    assert not any(b.name.startswith(("min_snr_db", "min_cosine")) for b in rep.budgets), rep.budgets
    assert rep == Report.model_validate_json((tmp_path / "o" / "report.json").read_text())
    st = rep.stages
    assert isinstance(st.prune, PruneStage) and isinstance(st.cluster, ClusterStage)
    assert isinstance(st.composition, Composition) and st.partial is None and st.mcu is None
    assert st.prune.macs_reduction >= 0.29 and st.prune.finetuned is True and st.prune.finetune is not None
    assert st.prune.macs_after < st.prune.macs_before and st.prune.groups
    assert st.prune.criterion == "l1" and st.prune.requested.macs_reduction == 0.3
    assert st.cluster.spec.clusters == 16 and all(layer.unique_after <= 16 for layer in st.cluster.layers)
    comp = st.composition
    assert [s.stage for s in comp.steps] == ["float", "prune", "cluster", "quantize"]
    assert comp.steps[1].params == st.prune.params_after < comp.steps[0].params == rep.input.params
    assert comp.quantization_bit_ratio == "32/8" and comp.pruning_ratio is not None and comp.pruning_ratio > 1.2
    assert comp.compression_ratio == pytest.approx(rep.baseline.artifact.bytes / rep.optimized.artifact.bytes)
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## Composition" in md and "## Pruning" in md and "## Weight sharing" in md
    assert f"MACs {st.prune.macs_before:,} -> {st.prune.macs_after:,}" in md
    assert f"| `{st.cluster.layers[0].layer}` | {st.cluster.layers[0].unique_before:,} |" in md
    assert "| after step | params | top-1 % |" in md and f"| prune | {st.prune.params_after:,} |" in md
    accuracy = {s.stage: s.accuracy for s in comp.steps}
    assert rep.optimized.accuracy is not None and accuracy["float"] is not None and accuracy["quantize"] is not None
    assert rep.optimized.accuracy.drop == pytest.approx(accuracy["float"] - accuracy["quantize"])


def test_prune_command_and_bad_input(cli, tmp_path: Path, samples: Path):
    model = samples / "digits_cnn.keras"
    out = tmp_path / "p.keras"
    r = cli("prune", model, "--ratio", "1.5", "--out", out)
    assert r.exit_code == 2 and "--ratio must be in [0, 1)" in r.stderr and not out.exists()
    r = cli("prune", model, "--macs-reduction", "0.99", "--round-to", "32", "--no-finetune", "--out", out)
    assert r.exit_code == 2 and "largest reachable" in r.stderr and not out.exists()
    r = cli("prune", samples / "digits_mlp.onnx", "--ratio", "0.5", "--out", out)
    assert r.exit_code == 2 and "pruning needs the Keras model" in r.stderr
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
