"""`[sparsity]` in `edgeopt build`: profile rules at load, and a real build whose artifact keeps the zeros."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeopt.errors import ProfileError
from edgeopt.pipeline.build import BuildRequest, build
from edgeopt.profiles import load_profile
from edgeopt.sparsify.artifact import zeros_by_layer

pytestmark = pytest.mark.tensorflow

BASE = 'extends = "mobile-cpu"\n[budgets]\nmax_accuracy_drop = 100\n'


@pytest.mark.parametrize("body, needle", [
    ("[sparsity]\nsparsity = 1.0\n", "sparsity.sparsity"),
    ('[sparsity]\nsparsity = 0.8\npattern = "2:4"\n', "pattern 2:4 fixes the sparsity at 0.5"),
    ('[sparsity]\npattern = "unstructured"\n', "needs sparsity.sparsity"),
    ('[sparsity]\nsparsity = 0.5\npattern = "3x3"\n', "sparsity.pattern '3x3' is not a sparsity pattern"),
    ('[sparsity]\nsparsity = 0.5\nlayers = "("\n', "is not a valid regular expression"),
    ("[sparsity]\nsparsity = 0.5\nratio = 2\n", "sparsity.ratio: unknown key"),
])
def test_bad_sparsity_sections_are_refused_at_load(tmp_path: Path, body: str, needle: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(BASE + body)
    with pytest.raises(ProfileError) as exc:
        load_profile(str(f))
    assert needle in str(exc.value)


def test_one_shot_sparsity_then_clustering_keeps_the_zeros_in_the_int8_artifact(samples: Path, tmp_path: Path) -> None:
    prof = tmp_path / "sp.toml"
    prof.write_text(BASE + '[sparsity]\nsparsity = 0.8\nepochs = 0\nlayers = "res|head"\n[cluster]\nclusters = 16\n')
    res = build(BuildRequest(model=samples / "digits_cnn.keras", target=str(prof), out=tmp_path / "out"))
    data = json.loads((res.out / "report.json").read_text())
    sp = data["stages"]["sparsity"]
    assert sp["pattern"] == "unstructured" and sp["finetune_epochs"] == 0 and sp["achieved"] == pytest.approx(0.8, abs=1e-3)
    names = [x["layer"] for x in sp["layers"]]
    assert names == ["res1_a_conv", "res1_b_conv", "res2_a_conv", "res2_proj_conv", "res2_b_conv", "head_conv"]
    assert [s["stage"] for s in data["stages"]["composition"]["steps"]] == ["float", "sparsify", "cluster", "quantize"]
    comp = data["stages"]["composition"]
    assert comp["pruning_ratio"] == 1.0  # zeros are not removed parameters
    assert comp["params_before"] == comp["params_after"] and comp["zero_weights"] > 0.7 * comp["kernel_weights"]
    per_layer = zeros_by_layer((res.out / data["optimized"]["artifact"]["path"]).read_bytes(), names)
    assert set(per_layer) == set(names)
    assert all(w.sparsity >= 0.79 for w in per_layer.values())  # clustering re-applied the masks
    assert all(x["unique_after"] <= 17 for x in data["stages"]["cluster"]["layers"])  # 16 shared values + 0
    md = (res.out / "report.md").read_text()
    assert "## Sparsity (weight-level magnitude pruning)" in md and "Zeros are not removed parameters" in md


def test_sparsity_with_fine_tuning_needs_training_data(samples: Path, tmp_path: Path) -> None:
    from edgeopt.errors import InputError

    prof = tmp_path / "sp.toml"
    prof.write_text(BASE + "[sparsity]\nsparsity = 0.8\n")
    with pytest.raises(InputError, match=r"\[sparsity\] epochs > 0 .* --train"):
        build(BuildRequest(model=samples / "digits_cnn.keras", target=str(prof), out=tmp_path / "o"))
