"""A stateful (streaming) model on the host side: resource variables counted, `mcu check` compares consecutive
frames (state carried), `export-c` writes the variable count and the interpreter recipe, the I/O types as they are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeopt.analysis.tflite_graph import read_tflite
from edgeopt.mcu.variables import STATEFUL_FRAMES, resource_variables
from tests.mcu.models import stateful_stream

pytestmark = pytest.mark.tensorflow  # its streaming model is built with TensorFlow


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    return stateful_stream(tmp_path_factory.mktemp("stateful") / "stream.tflite")


@pytest.fixture(scope="module")
def same_frame(tmp_path_factory) -> Path:
    """The same input frame 20 times: a stateless model would answer 20 times the same."""
    frame = np.random.default_rng(3).uniform(-1, 1, (1, 1, 8)).astype(np.float32)
    path = tmp_path_factory.mktemp("frames") / "same.npz"
    np.savez(path, x=np.repeat(frame, STATEFUL_FRAMES, axis=0))
    return path


def test_variables_are_counted_by_shared_name(stream):
    g = read_tflite(stream)
    assert g.op_counts["VAR_HANDLE"] == 4 and g.op_counts["CALL_ONCE"] == 1  # main graph and init subgraph
    v = resource_variables(g, stream.name)
    assert v.names == ("frames", "hidden") and v.count == 2 and v.stateful


def test_check_compares_20_consecutive_frames_and_the_state_is_carried(cli, stream, same_frame):
    from edgeopt.mcu.compare import make_feeds
    from edgeopt.mcu.tflm import run_tflm
    from edgeopt.runtime import open_runner
    from edgeopt.runtime.base import RunnerOptions

    r = cli("mcu", "check", stream, "--target", "nrf52840", "--data", same_frame, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["resource_variables"] == 2 and d["samples_compared"] == STATEFUL_FRAMES and d["bit_exact"] is True
    # One rule for the I/O types: the model's own (uint8 out) are reported beside the profile's, not refused.
    assert d["io_types"] == [["int8"], ["uint8"]]
    assert len(d["io_findings"]) == 1 and "output 0" in d["io_findings"][0] and "is uint8" in d["io_findings"][0]
    # The state is carried: the same frame gives other outputs while the windows fill (4 frames, then 3 hidden).
    runner = open_runner(stream, RunnerOptions(threads=1, xnnpack=False))
    feeds = make_feeds(runner.inputs, {"x": np.load(same_frame)["x"]}, STATEFUL_FRAMES)
    outs = [o[0].tobytes() for o in run_tflm(stream, d["arena_bytes"], feeds).outputs]
    assert len(set(outs[:6])) >= 3 and outs[-1] == outs[-2]  # it settles once the windows hold only that frame


def test_export_c_writes_the_variable_count_and_recipe(cli, stream, mcu_models, tmp_path):
    r = cli("export-c", stream, "--target", "nrf52840", "--out", tmp_path / "s")
    assert r.exit_code == 0, r.output
    h = (tmp_path / "s" / "g_model.h").read_text()
    assert "#define G_MODEL_RESOURCE_VARIABLES 2\n" in h
    assert "tflite::MicroResourceVariables::Create(allocator, G_MODEL_RESOURCE_VARIABLES)" in h
    assert "AddVarHandle()" in h and "AddReadVariable()" in h and "AddAssignVariable()" in h and "AddCallOnce()" in h
    r = cli("export-c", mcu_models["int8"], "--out", tmp_path / "plain")
    assert r.exit_code == 0, r.output
    plain = (tmp_path / "plain" / "g_model.h").read_text()
    assert "#define G_MODEL_RESOURCE_VARIABLES 0\n" in plain and "MicroResourceVariables::Create" not in plain


def test_a_variable_without_shared_name_is_refused(cli, stream, tmp_path):
    """TFLM looks variables up by strcmp on the shared name: an empty one is exit 2, one line, before TFLM runs."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(stream.read_bytes(), 0)
    for sg in model.subgraphs:
        for op in sg.operators:
            if isinstance(op.builtinOptions, schema.VarHandleOptionsT):
                op.builtinOptions.sharedName = None
    import flatbuffers

    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    bad = tmp_path / "unnamed.tflite"
    bad.write_bytes(bytes(b.Output()))
    r = cli("mcu", "check", bad, "--target", "nrf52840")
    assert r.exit_code == 2, r.output
    assert "VAR_HANDLE#1" in r.output and "empty shared_name" in r.output and "Traceback" not in r.output
