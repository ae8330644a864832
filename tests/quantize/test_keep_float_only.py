"""`[partial] accuracy_control = false` with `keep_float`: the named ops stay float, with no loop and no budget.

This is what `edgeopt search`'s keep_float_top writes into a trial's profile; the section was ignored before (the
build made plain int8, so every keep-float trial repeated the plain int8 one byte for byte).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.quantize.test_partial_fragile import digits_data
from tests.quantize.test_tflite_file_partial import fragile_onnx


def _build(cli, tmp_path: Path, keep: str, with_eval: bool = True):
    xtr, _, xev, yev = digits_data()
    np.savez(tmp_path / "calib.npz", x=xtr[:200])
    np.savez(tmp_path / "eval.npz", x=xev, y=yev)
    model = fragile_onnx(tmp_path / "fragile.onnx")
    profile = tmp_path / "keep.toml"
    profile.write_text(f'extends = "edge-server"\ndescription = "keep float, no control"\n\n[partial]\n'
                       f'accuracy_control = false\nfallbacks = ["float"]\nkeep_float = ["{keep}"]\n')
    args = ["build", model, "--target", profile, "--calib", tmp_path / "calib.npz", "--out", tmp_path / "out",
            "--no-bench"]
    return cli(*args, *(("--eval", tmp_path / "eval.npz") if with_eval else ()))


def test_keep_float_alone_keeps_the_named_op_float(cli, tmp_path: Path) -> None:
    r = _build(cli, tmp_path, "^fragile$")
    assert r.exit_code in (0, 3), r.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    p = rep["stages"]["partial"]
    assert len(p["steps"]) == 1 and p["steps"][0]["scheme"] == "int8+float", p
    assert p["steps"][0]["layers"] == ["fragile"]
    # the fragile layer kept float restores what plain int8 destroys (its drop is ~70 points)
    assert rep["optimized"]["accuracy"]["drop"] <= 2.0, rep["optimized"]["accuracy"]
    assert "accuracy control ([partial]) did not meet" not in r.output


def test_keep_float_without_eval_data_says_it_was_not_applied(cli, tmp_path: Path) -> None:
    r = _build(cli, tmp_path, "^fragile$", with_eval=False)
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["stages"].get("partial") is None
    assert any("keep_float was not applied" in n for n in rep["notes"]), rep["notes"]
