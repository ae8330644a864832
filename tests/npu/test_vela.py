"""Ethos-U through the real Vela (ethos-u-vela): the NPU stage on tiny int8 models built in code, the CLI's
`npu compile`, its bad input (exit 2, one line) and `build --target alif-e3` end to end."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.analysis.tflite_graph import read_tflite
from edgeopt.npu.vela import PIP_COMMAND, compile_for_npu
from edgeopt.profiles import load_profile

pytestmark = pytest.mark.tensorflow  # builds digits_cnn with Keras

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    import keras

    from tests.mcu.models import convert, small_cnn

    keras.utils.set_random_seed(0)
    work = tmp_path_factory.mktemp("npu_models")
    cnn = small_cnn(keras)
    return {"int8": convert(cnn, work, "cnn_int8"), "float_io": convert(cnn, work, "cnn_float_io", io="float32")}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_int8_model_runs_on_the_npu(models, tmp_path: Path):
    npu = load_profile("ethos-u55").profile.npu
    assert npu is not None and npu.accelerator == "ethos-u55-128"
    before = _sha(models["int8"])
    r = compile_for_npu(models["int8"], npu, tmp_path / "cnn_vela.tflite", "ethos-u55")
    ops = r.operators
    assert ops.total == len(read_tflite(models["int8"]).main.operators) and ops.npu == ops.total > 0
    assert ops.cpu == 0 and ops.cpu_ops == {} and ops.command_streams == 1
    assert r.sram_bytes > 0 and r.flash_bytes > 0 and r.cycles > 0 and r.latency_ms > 0 and r.macs > 0
    assert r.latency_ms == pytest.approx(r.cycles / (r.clock_mhz * 1e3), rel=1e-3)
    assert r.label == "estimate (Vela 5.2.0, ethos-u55-128, Ethos_U55_High_End_Embedded, Shared_Sram)"
    assert r.layers and all(row.target == "NPU" for row in r.layers)
    assert {row.original_operator for row in r.layers} >= {"Conv2D", "FullyConnected"}
    assert sum(row.cycles for row in r.layers) == pytest.approx(r.cycles, rel=0.01)  # the rows make the total
    compiled = read_tflite(tmp_path / "cnn_vela.tflite")
    assert [(o.op, o.custom) for o in compiled.main.operators] == [("ethos-u", True)]
    assert r.compiled_bytes == (tmp_path / "cnn_vela.tflite").stat().st_size
    assert _sha(models["int8"]) == before  # Vela ran on a private copy
    # more MACs per cycle: fewer cycles for the same model
    wide = npu.model_copy(update={"macs": 256})
    assert compile_for_npu(models["int8"], wide, tmp_path / "w.tflite").cycles < r.cycles


def test_float_io_ops_fall_back_to_the_cpu(models, tmp_path: Path):
    npu = load_profile("ethos-u55").profile.npu
    assert npu is not None
    r = compile_for_npu(models["float_io"], npu, tmp_path / "f.tflite")
    assert r.operators.cpu_ops == {"QUANTIZE": 1, "DEQUANTIZE": 1} and r.operators.cpu == 2
    assert r.operators.npu == r.operators.total - 2 > 0
    assert "Float32" in r.operators.cpu_reasons["QUANTIZE"]
    assert [row.original_operator for row in r.layers if row.target == "CPU"] == ["Quantize", "Dequantize"]
    assert [o.op for o in read_tflite(tmp_path / "f.tflite").main.operators] == ["QUANTIZE", "ethos-u", "DEQUANTIZE"]


def test_npu_compile_cli(cli, models, tmp_path: Path):
    r = cli("npu", "compile", models["int8"], "--target", "alif-e3", "--out", tmp_path / "o", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["accelerator"] == "ethos-u55-256" and data["operators"]["npu"] > 0 and data["cycles"] > 0
    assert data["compiled_model"] == "cnn_int8_vela.tflite" and (tmp_path / "o" / "cnn_int8_vela.tflite").is_file()
    human = cli("npu", "compile", models["float_io"], "--target", "ethos-u55", "--out", tmp_path / "h")
    assert human.exit_code == 0 and "QUANTIZE x1" in human.output and "estimate (Vela 5.2.0, ethos-u55-128" in human.output


def test_a_configuration_vela_rejects_is_exit_2_one_line(cli, models, tmp_path: Path):
    prof = tmp_path / "bad-npu.toml"
    prof.write_text('extends = "ethos-u55"\n\n[npu]\nkind = "ethos-u55"\nmacs = 128\nsystem_config = "No_Such_System"\n')
    r = cli("npu", "compile", models["int8"], "--target", prof, "--out", tmp_path / "o")
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert "Vela rejects the [npu] configuration of profile 'bad-npu'" in lines[0] and "No_Such_System" in lines[0]
    assert not (tmp_path / "o").exists()  # nothing left behind
    # U55 with the memory mode of a U65 (arena in off-chip flash): Vela's own reason, one line
    prof.write_text('extends = "ethos-u55"\n\n[npu]\nkind = "ethos-u55"\nmacs = 128\nmemory_mode = "Dedicated_Sram"\n')
    r = cli("npu", "compile", models["int8"], "--target", prof, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "arena_mem_area" in r.output and "Traceback" not in r.output


def test_profile_errors(cli, models, tmp_path: Path):
    prof = tmp_path / "odd.toml"
    prof.write_text('extends = "ethos-u55"\n\n[npu]\nkind = "ethos-u55"\nmacs = 512\n')
    r = cli("npu", "compile", models["int8"], "--target", prof, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "npu.macs = 512 is not built for 'ethos-u55'; use one of 32, 64, 128, 256" in r.output
    prof.write_text('extends = "mobile-cpu"\n\n[npu]\nkind = "ethos-u55"\nmacs = 128\n')
    r = cli("npu", "compile", models["int8"], "--target", prof, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "[npu] needs device_class = 'embedded-mcu'" in r.output
    r = cli("npu", "compile", models["int8"], "--target", "embedded-mcu", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "profile 'embedded-mcu' has no [npu] section" in r.output
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"TFL3" * 10)
    r = cli("npu", "compile", junk, "--target", "ethos-u55", "--out", tmp_path / "j")
    assert r.exit_code == 2 and "corrupt .tflite flatbuffer" in r.output and not (tmp_path / "j").exists()
    (tmp_path / "afile").write_text("")
    r = cli("npu", "compile", models["int8"], "--target", "ethos-u55", "--out", tmp_path / "afile")
    assert r.exit_code == 2 and "--out" in r.output and "is a file; give a folder" in r.output


def test_vela_missing_is_exit_2_with_the_pip_command(models, tmp_path: Path):
    code = ("import sys; sys.modules['ethosu'] = None\n"  # this Python cannot import Vela
            "from edgeopt.cli.app import main; sys.argv[0] = 'edgeopt'; main()")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code, "npu", "compile", str(models["int8"]), "--target", "alif-e3",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert PIP_COMMAND in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
    # a build on an [npu] profile stops before any work, with the same line
    r = subprocess.run([sys.executable, "-c", code, "build", str(ROOT / "sample_models" / "digits_cnn.keras"),
                        "--target", "ethos-u55", "--out", str(tmp_path / "b")], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2 and PIP_COMMAND in r.stderr and not (tmp_path / "b").exists(), r.stderr


def test_build_alif_e3_runs_the_npu_stage(cli, samples: Path, tmp_path: Path):
    out = tmp_path / "build"
    r = cli("build", samples / "digits_cnn.keras", "--target", "alif-e3", "--out", out, "--no-bench")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == "2.7"
    n = report["stages"]["npu"]
    assert n["accelerator"] == "ethos-u55-256" and n["compiled_model"] == "digits_cnn_vela.tflite"
    assert n["operators"]["npu"] == n["operators"]["total"] > 0 and n["operators"]["cpu"] == 0
    assert n["sram_bytes"] > 0 and n["flash_bytes"] > 0 and n["cycles"] > 0 and n["latency_ms"] > 0
    assert len(n["layers"]) > 0 and n["label"].startswith("estimate (Vela 5.2.0, ethos-u55-256")
    compiled = read_tflite(out / "digits_cnn_vela.tflite")
    assert [o.op for o in compiled.main.operators] == ["ethos-u"]
    assert "digits_cnn_vela.tflite" in json.loads((out / "manifest.json").read_text())["artifacts"]
    md = (out / "report.md").read_text()
    assert "## NPU (Ethos-U, Vela)" in md and "estimate (Vela 5.2.0, ethos-u55-256" in md
    assert "NPU (Ethos-U, Vela)" in (out / "report.html").read_text()
    assert "NPU ethos-u55-256:" in r.output
    assert any(x.startswith("Ethos-U: 14 of 14 operators run on the ethos-u55-256") for x in report["notes"])
    # `search` can minimise it: npu_latency is read from the typed report
    from edgeopt.pipeline.search.trial import objective_value
    from edgeopt.profiles.schema import Objective
    from edgeopt.report.schema import Report

    typed = Report.model_validate_json((out / "report.json").read_text())
    assert objective_value(typed, Objective.NPU_LATENCY) == n["latency_ms"] > 0


def test_npu_latency_objective_needs_an_npu(cli, tmp_path: Path):
    ok = tmp_path / "npu-search.toml"
    ok.write_text('extends = "alif-e3"\n\n[search]\nobjectives = ["npu_latency", "accuracy_drop"]\n')
    assert load_profile(str(ok)).profile.search.objectives[0] == "npu_latency"
    bad = tmp_path / "no-npu-search.toml"
    bad.write_text('extends = "stm32h7"\n\n[search]\nobjectives = ["npu_latency"]\n')
    r = cli("targets", "show", bad)
    assert r.exit_code == 2 and "'npu_latency' is Vela's estimate for the profile's Ethos-U" in r.output


def test_npu_compile_does_not_import_tensorflow(models, tmp_path: Path):
    code = f"""
import sys
from typer.testing import CliRunner
from edgeopt.cli.app import app
r = CliRunner().invoke(app, ["npu", "compile", {str(models['int8'])!r}, "--out", {str(tmp_path / 'o')!r}, "--json"])
assert r.exit_code == 0, r.output
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_vela_past_its_timeout_is_stopped(cli, models, tmp_path: Path):
    prof = tmp_path / "hasty.toml"
    prof.write_text('extends = "ethos-u55"\n\n[npu]\nkind = "ethos-u55"\nmacs = 128\ntimeout_seconds = 0.05\n')
    r = cli("npu", "compile", models["int8"], "--target", prof, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "Vela did not finish within 0.05 s and was stopped" in r.output, r.output
    assert "raise [npu] timeout_seconds" in r.output and not (tmp_path / "o").exists()
