"""`edgeopt mcu check` and `edgeopt export-c` through the real Typer app: exit codes, messages, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parents[2]


def test_mcu_check_ok_json(cli, mcu_models, tmp_path: Path):
    import numpy as np

    data = tmp_path / "samples.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((3, 16, 16, 3)).astype(np.float32))
    r = cli("mcu", "check", mcu_models["int8"], "--target", "nrf52840", "--data", data, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["bit_exact"] is True and rep["samples_compared"] == 3 and rep["sample_source"] == str(data)
    assert rep["arena_with_margin"] > rep["arena_bytes"] > 0 and rep["violations"] == []
    assert rep["ops"] == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN", "SOFTMAX"]


def test_mcu_check_float_model_exit_2(cli, mcu_models):
    r = cli("mcu", "check", mcu_models["float"])
    assert r.exit_code == 2
    assert "float ops left in the graph" in r.output and "needs an int8 model" in r.output
    assert "Traceback" not in r.output


def test_mcu_check_budget_exit_3(cli, mcu_models, tiny_board):
    r = cli("mcu", "check", mcu_models["int8"], "--target", tiny_board)
    assert r.exit_code == 3
    assert "budget exceeded" in r.output and "RAM (board [mcu] ram_kb)" in r.output and "limit 4 KB" in r.output


def test_mcu_check_uint8_output_is_a_finding_exit_0(cli, mcu_models, tmp_path: Path):
    r = cli("mcu", "check", mcu_models["uint8_out"], "--target", "nrf52840", "--samples", "3", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["arena_bytes"] > 0 and rep["bit_exact"] is True and rep["samples_compared"] == 3
    assert len(rep["io_findings"]) == 1 and "is uint8, the profile wants int8" in rep["io_findings"][0]
    human = cli("mcu", "check", mcu_models["uint8_out"], "--target", "nrf52840", "--samples", "2")
    assert human.exit_code == 0, human.output
    out, err = (" ".join(text.split()) for text in (human.stdout, human.stderr))  # wrapped at the console width
    assert "I/O types vs profile" in out and "differ" in out
    assert err.startswith("warning: output 0 ") and "the firmware must use the model's I/O types" in err
    ok = cli("mcu", "check", mcu_models["int8"], "--target", "nrf52840", "--samples", "2", "--json")
    assert json.loads(ok.stdout)["io_findings"] == []
    gen = cli("export-c", mcu_models["uint8_out"], "--out", tmp_path / "gen", "--json")
    assert gen.exit_code == 0, gen.output
    assert "#define G_MODEL_OUTPUT0_DTYPE \"uint8\"" in (tmp_path / "gen" / "g_model.h").read_text()


def test_export_c_cli(cli, mcu_models, tmp_path: Path):
    r = cli("export-c", mcu_models["int8"], "--out", tmp_path / "gen", "--name", "net", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert Path(out["header"]).name == "net.h" and out["resolver"][0] == "AddConv2D"
    assert f"#define NET_ARENA_SIZE {out['arena_with_margin']}" in (tmp_path / "gen" / "net.h").read_text()


def test_export_c_errors_exit_2(cli, mcu_models, tmp_path: Path):
    bad = cli("export-c", mcu_models["int8"], "--out", tmp_path, "--name", "1st")
    assert bad.exit_code == 2 and "not a valid C identifier" in bad.output
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = cli("export-c", mcu_models["int8"], "--out", blocker / "x")
    assert r.exit_code == 2 and "cannot create output folder" in r.output
    f = cli("export-c", mcu_models["float"], "--out", tmp_path / "f")
    assert f.exit_code == 2 and "needs an int8 model" in f.output and not (tmp_path / "f").exists()


def test_commands_do_not_import_tensorflow(mcu_models, tmp_path: Path):
    code = f"""
import sys
from typer.testing import CliRunner
from edgeopt.cli.app import app
r = CliRunner().invoke(app, ["mcu", "check", {str(mcu_models['int8'])!r}, "--json"])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(app, ["export-c", {str(mcu_models['int8'])!r}, "--out", {str(tmp_path / 'c')!r}])
assert r.exit_code == 0, r.output
assert "tensorflow" not in sys.modules, "tensorflow was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
