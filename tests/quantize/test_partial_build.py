"""Accuracy control through `edgeopt build` and a user profile with a [partial] section (real CLI, converters, runtimes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeopt.report.schema import PartialStage, Report
from tests.quantize.test_partial_fragile import fragile_mlp

pytestmark = pytest.mark.tensorflow

PARTIAL = "\n[budgets]\nmax_accuracy_drop = 1.0\n\n[partial]\nfallbacks = {fallbacks}\n"


@pytest.fixture(scope="module")
def fragile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgeopt.convert.onnx import keras_to_onnx

    d = tmp_path_factory.mktemp("fragile_build")
    model, data = fragile_mlp()
    model.save(d / "fragile.keras")
    (d / "fragile.onnx").write_bytes(keras_to_onnx(model, 17))
    np.savez(d / "calib.npz", x=data["calib"])
    np.savez(d / "eval.npz", x=data["x"], y=data["y"])
    return {"dir": d, "keras": d / "fragile.keras", "onnx": d / "fragile.onnx", "calib": d / "calib.npz",
            "eval": d / "eval.npz"}


def _profile(folder: Path, name: str, base: str, fallbacks: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'extends = "{base}"\ndescription = "accuracy control test"\n' + PARTIAL.format(fallbacks=fallbacks))
    return path


def _build(cli, files, model: Path, profile: Path | str, out: Path):
    return cli("build", model, "--target", profile, "--calib", files["calib"], "--eval", files["eval"],
               "--out", out, "--no-bench")


@pytest.mark.parametrize("kind,target", [("keras", "mobile-cpu"), ("onnx", "edge-server")])
def test_builtin_profile_moves_only_the_fragile_layer_out_of_int8(cli, fragile_files, tmp_path: Path, kind: str,
                                                                   target: str):
    r = _build(cli, fragile_files, fragile_files[kind], target, tmp_path / "out")
    assert r.exit_code == 0, r.output
    report = Report.model_validate_json((tmp_path / "out" / "report.json").read_text())
    p = report.stages.partial
    assert isinstance(p, PartialStage) and p.backend == kind.replace("keras", "tflite")
    first, chosen = p.steps[0], p.steps[p.chosen]
    assert first.accuracy_drop > 20 and p.met is True and len(p.steps) == 2 and chosen.within_budget
    assert len(chosen.layers) == 1 and "fragile" in chosen.layers[0] and chosen.scheme == "int8+float"
    assert p.sensitivity and min(p.sensitivity, key=lambda s: s.snr_db).name == chosen.out_of_int8[0]
    assert report.optimized.accuracy is not None and report.optimized.accuracy.drop <= 1.0 and report.ok is True
    assert report.optimized.artifact.bytes == chosen.size_bytes
    md = (tmp_path / "out" / "report.md").read_text()
    assert "out of int8" in md and chosen.layers[0] in md and "met: True; chosen step 1 (int8+float" in md


def test_mcu_int16x8_fallback_needs_the_board_to_allow_int16x8(cli, fragile_files, tmp_path: Path):
    profile = _profile(tmp_path, "mcu-ac", "embedded-mcu", '["int16x8"]')
    out = tmp_path / "out"
    r = _build(cli, fragile_files, fragile_files["keras"], profile, out)
    assert r.exit_code == 2, r.output
    assert "allow_int16x8" in r.output and "int16x8" in r.output and not out.exists()


def test_mcu_profile_without_a_rescue_exits_3_and_keeps_the_report(cli, fragile_files, tmp_path: Path):
    """int16x8 cannot save a weight outlier (int8 weights either way) and the MCU allows no float: exit 3."""
    profile = _profile(tmp_path, "mcu-ac", "embedded-mcu", '["int16x8"]')
    profile.write_text(profile.read_text() + "\n[mcu]\nallow_int16x8 = true\n")
    out = tmp_path / "out"
    r = _build(cli, fragile_files, fragile_files["keras"], profile, out)
    assert r.exit_code == 3, r.output
    assert "max_accuracy_drop" in r.output
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is False
    partial = report["stages"]["partial"]
    assert [s["scheme"] for s in partial["steps"]] == ["int8", "int16x8"] and partial["met"] is False
    assert any(n.startswith("accuracy control ([partial]) did not meet max_accuracy_drop 1 points: 2 variant(s) tried")
               for n in report["notes"])
    failed = [b for b in report["budgets"] if b["ok"] is False]
    assert failed[0]["name"] == "max_accuracy_drop" and failed[0]["actual"] > failed[0]["limit"]
    # the weight outlier also takes the output far from float: the profile's floors fail with it
    assert {b["name"] for b in failed[1:]} <= {"min_snr_db", "min_cosine"}
    assert (out / "g_model.h").is_file()  # the firmware files of the best variant are still written


def test_accuracy_control_without_eval_data_says_it_was_skipped(cli, fragile_files, tmp_path: Path):
    out = tmp_path / "out"
    r = cli("build", fragile_files["keras"], "--target", "mobile-cpu", "--calib", fragile_files["calib"], "--out", out,
            "--no-bench")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["partial"] is None
    assert any("accuracy control ([partial]) was skipped" in n for n in report["notes"])
