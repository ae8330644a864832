"""`inspect` on ONNX control flow and recurrent ops: If branches, Loop/Scan bodies, LSTM/GRU; MACs per sample.

Models are built with onnx.helper; every number is computed by hand in the test.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeopt.analysis.inspect import inspect_model
from edgeopt.cli.app import app

T, IN, H = 5, 4, 3  # LSTM: time steps, input size, hidden size


def _init(name: str, *shape: int) -> onnx.TensorProto:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def lstm_if_model(path, batch: int = 1):
    """x [T, batch, IN] -> LSTM(H) -> Y_h [1, batch, H] -> [batch, H] -> If(cond): Gemm(3x4) | MatMul(3x4) . MatMul(4x4)."""
    then_g = helper.make_graph(
        [helper.make_node("Gemm", ["h", "wt", "bt"], ["yt"], name="then_gemm")], "then",
        [], [helper.make_tensor_value_info("yt", TensorProto.FLOAT, [batch, 4])],
        [_init("wt", H, 4), _init("bt", 4)])
    else_g = helper.make_graph(
        [helper.make_node("MatMul", ["h", "we1"], ["e1"], name="else_mm1"),
         helper.make_node("MatMul", ["e1", "we2"], ["ye"], name="else_mm2")], "else",
        [], [helper.make_tensor_value_info("ye", TensorProto.FLOAT, [batch, 4])],
        [_init("we1", H, 4), _init("we2", 4, 4)])
    nodes = [
        helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h"], name="lstm", hidden_size=H),
        helper.make_node("Reshape", ["Y_h", "hshape"], ["h"], name="flat"),
        helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
    ]
    g = helper.make_graph(
        nodes, "lstm_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, batch, IN]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [_init("W", 1, 4 * H, IN), _init("R", 1, 4 * H, H), _init("B", 1, 8 * H),
         numpy_helper.from_array(np.array([batch, H], np.int64), "hshape")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


LSTM_PARAMS = 4 * H * IN + 4 * H * H + 8 * H  # W, R, B
LSTM_MACS = T * 4 * H * (IN + H)  # 4 gates x hidden x (input + hidden) per step
THEN_PARAMS, THEN_MACS = H * 4 + 4, H * 4
ELSE_PARAMS, ELSE_MACS = H * 4 + 4 * 4, H * 4 + 4 * 4


def test_if_and_lstm_params_and_macs_by_hand(tmp_path) -> None:
    path = lstm_if_model(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # the model is real and runs
    x = np.zeros((T, 1, IN), np.float32)
    assert sess.run(None, {"x": x, "cond": np.array(True)})[0].shape == (1, 4)
    info = inspect_model(path)
    assert info.params == LSTM_PARAMS + THEN_PARAMS + ELSE_PARAMS == 108 + 16 + 28
    assert info.macs == LSTM_MACS + max(THEN_MACS, ELSE_MACS) == 420 + 28
    layers = {x.name: x for x in info.layers}
    assert (layers["lstm"].params, layers["lstm"].macs) == (LSTM_PARAMS, LSTM_MACS)
    assert (layers["branch"].params, layers["branch"].macs) == (THEN_PARAMS + ELSE_PARAMS, ELSE_MACS)
    inner = layers["branch/then_branch/then_gemm"]
    assert (inner.scope, inner.params, inner.macs) == ("branch/then_branch", THEN_PARAMS, THEN_MACS)
    assert layers["branch/else_branch/else_mm2"].macs == 16
    assert sum(x.macs for x in info.layers if not x.scope) == info.macs
    assert any("If 'branch'" in n and "upper bound" in n and "else_branch" in n for n in info.notes), info.notes


def test_macs_are_per_sample_for_every_op(tmp_path) -> None:
    one = inspect_model(lstm_if_model(tmp_path / "b1.onnx", batch=1))
    four = inspect_model(lstm_if_model(tmp_path / "b4.onnx", batch=4))
    assert four.macs == one.macs and four.params == one.params
    # Gemm with a static batch of 8 counts one sample, like Conv
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 10])], [_init("w", 10, 16)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(tmp_path / "g.onnx"))
    assert inspect_model(tmp_path / "g.onnx").macs == 16 * 10


def _loop_model(path, trips: int | None):
    """Loop whose body is a MatMul 6x6 on the carried state; trip count constant or a graph input."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("MatMul", ["s_in", "wl"], ["s_out"], name="step")], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [1, 6])])
    inits = [_init("wl", 6, 6), numpy_helper.from_array(np.array(True), "t")]
    inputs = [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 6])]
    if trips is None:
        inputs.append(helper.make_tensor_value_info("M", TensorProto.INT64, []))
    else:
        inits.append(numpy_helper.from_array(np.array(trips, np.int64), "M"))
    g = helper.make_graph([helper.make_node("Loop", ["M", "t", "s"], ["y"], name="loop", body=body)], "g", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_loop_counts_trip_count_or_says_per_iteration(tmp_path) -> None:
    known = inspect_model(_loop_model(tmp_path / "k.onnx", trips=7))
    assert known.macs == 7 * 36 and known.params == 36  # the trip count and condition are not weights
    assert any("x 7 iterations" in n for n in known.notes)
    unknown = inspect_model(_loop_model(tmp_path / "u.onnx", trips=None))
    assert unknown.macs == 36 and any("per iteration" in n for n in unknown.notes), unknown.notes


def test_gru_with_unknown_sequence_length_is_per_step(tmp_path) -> None:
    g = helper.make_graph(
        [helper.make_node("GRU", ["x", "W", "R"], ["Y"], name="gru", hidden_size=H, direction="bidirectional")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 1, IN])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq", 2, 1, H])],
        [_init("W", 2, 3 * H, IN), _init("R", 2, 3 * H, H)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(tmp_path / "g.onnx"))
    info = inspect_model(tmp_path / "g.onnx")
    assert info.macs == 2 * 3 * H * (IN + H) and info.params == 2 * 3 * H * (IN + H)
    assert any("GRU 'gru'" in n and "per time step" in n for n in info.notes)


def test_cli_json_and_human_show_scope_and_notes(tmp_path) -> None:
    path = lstm_if_model(tmp_path / "m.onnx")
    res = CliRunner().invoke(app, ["inspect", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["macs"] == 448 and d["params"] == 152
    assert {x["scope"] for x in d["layers"]} == {"", "branch/then_branch", "branch/else_branch"}
    assert any("only one branch runs" in n for n in d["notes"])
    human = CliRunner().invoke(app, ["inspect", str(path)], catch_exceptions=False)
    assert human.exit_code == 0 and "note: If 'branch'" in human.stdout
