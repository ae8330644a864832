"""A stateful (streaming) model on the emulated Cortex-M4F: the harness creates the MicroResourceVariables table,
20 consecutive frames run with the state carried, each bit-exact with host TFLM and LiteRT; uint8 output as it is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.mcu.variables import STATEFUL_FRAMES
from tests.firmware.conftest import needs_toolchain
from tests.mcu.models import stateful_stream

pytestmark = [pytest.mark.tensorflow, pytest.mark.firmware]


@needs_toolchain
def test_stateful_model_runs_20_frames_bit_exact_on_the_m4f(cli, tflm, tmp_path):
    from edgeopt.mcu.compare import make_feeds
    from edgeopt.mcu.tflm import run_tflm
    from edgeopt.runtime import open_runner
    from edgeopt.runtime.base import RunnerOptions

    model = stateful_stream(tmp_path / "stream.tflite")
    frame = np.random.default_rng(3).uniform(-1, 1, (1, 1, 8)).astype(np.float32)
    data = tmp_path / "same.npz"
    np.savez(data, x=np.repeat(frame, STATEFUL_FRAMES, axis=0))  # the same frame: only the state can change outputs

    r = cli("mcu", "run", model, "--target", "nrf52840", "--tflm", tflm, "--data", data, "--json", "--out", tmp_path / "fw")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["core"] == "cortex-m4f"
    # Every one of the 20 consecutive frames equals host TFLM and LiteRT bit for bit (state carried in all three).
    assert d["samples"] == STATEFUL_FRAMES and d["stateful"]["consecutive_frames"] == STATEFUL_FRAMES
    assert d["vs_host_tflm"]["bit_exact"] is True and d["vs_host_tflm"]["mismatched_elements"] == 0
    assert d["vs_litert"]["bit_exact"] is True
    # The table the harness created: 2 variables; allocator + table in the arena, which is exact on the target.
    assert d["stateful"]["resource_variables"] == 2 and 0 < d["stateful"]["variable_table_bytes"] < d["arena"]["target_bytes"]
    assert d["arena"]["target_minus_one_fails"] is True and d["arena"]["target_bytes"] < d["arena"]["host_bytes"]
    header = (tmp_path / "fw" / "g_model.h").read_text()
    assert "#define G_MODEL_RESOURCE_VARIABLES 2\n" in header
    assert "MicroResourceVariables::Create(a, G_MODEL_RESOURCE_VARIABLES)" in (tmp_path / "fw" / "main.cc").read_text()
    # Instructions per frame over frames 2..20; frame 1 also runs CALL_ONCE's initialisation, so it costs more.
    ins = d["instructions_per_inference"]
    assert len(ins["per_sample"]) == STATEFUL_FRAMES and ins["first_frame"] == ins["per_sample"][0]
    assert ins["first_frame"] > ins["max"] >= ins["median"] >= ins["min"] == min(ins["per_sample"][1:]) > 0
    assert ins["over"].startswith("frames 2..N")
    # The model's own I/O types: uint8 out on an int8 board profile, reported and used.
    assert d["io_types"] == {"inputs": ["int8"], "outputs": ["uint8"]} and "is uint8" in d["io_findings"][0]
    assert "the firmware used the model's own types" in " ".join(r.stderr.split())  # rich wraps the line
    # The state really is carried: host TFLM (which the device equals on every element) answers the same frame
    # differently while the windows fill.
    runner = open_runner(model, RunnerOptions(threads=1, xnnpack=False))
    feeds = make_feeds(runner.inputs, {"x": np.load(data)["x"]}, STATEFUL_FRAMES)
    outs = [o[0].tobytes() for o in run_tflm(model, d["arena"]["host_bytes"], feeds).outputs]
    assert len(set(outs[:6])) >= 3
