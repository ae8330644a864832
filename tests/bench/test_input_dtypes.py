"""Random benchmark inputs in the model's own dtype; integer inputs from a small safe range; unfeedable types refused.

Models are built with onnx.helper and run in the real onnxruntime through `edgeopt bench`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeopt.benchmark.inputs import make_feeds
from edgeopt.cli.app import app
from edgeopt.runtime import open_runner
from edgeopt.runtime.tensors import INT_RANGE

FAST = ("--runs", "5", "--min-seconds", "0.05", "--warmup-seconds", "0.01")


def _save(path: Path, nodes, inputs, outputs, inits=(), opset: int = 21) -> Path:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10), str(path))
    return path


def many_types(path: Path) -> Path:
    """An index into a 4-row table (int64), uint16/uint32/uint64 values, a flag (bool) and a string tensor."""
    v = helper.make_tensor_value_info
    nodes = [helper.make_node("Gather", ["table", "index"], ["rows"], axis=0),
             helper.make_node("Cast", ["u16"], ["f16"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["u32"], ["f32"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["u64"], ["f64"], to=TensorProto.FLOAT),
             helper.make_node("Sum", ["f16", "f32", "f64"], ["total"]),
             helper.make_node("Not", ["flag"], ["flag_out"]),
             helper.make_node("Identity", ["text"], ["text_out"])]
    table = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2), "table")
    return _save(path, nodes,
                 [v("index", TensorProto.INT64, [1, 6]), v("u16", TensorProto.UINT16, [1, 3]),
                  v("u32", TensorProto.UINT32, [1, 3]), v("u64", TensorProto.UINT64, [1, 3]),
                  v("flag", TensorProto.BOOL, [1]), v("text", TensorProto.STRING, [1, 2])],
                 [v("rows", TensorProto.FLOAT, [1, 6, 2]), v("total", TensorProto.FLOAT, [1, 3]),
                  v("flag_out", TensorProto.BOOL, [1]), v("text_out", TensorProto.STRING, [1, 2])], [table])


def test_every_input_is_fed_in_its_own_dtype_and_integers_stay_small(tmp_path) -> None:
    runner = open_runner(many_types(tmp_path / "m.onnx"))
    assert [t.dtype for t in runner.inputs] == ["int64", "uint16", "uint32", "uint64", "bool", "string"]
    feeds = make_feeds(runner.inputs, seed=0)
    assert [f.dtype for f in feeds[:5]] == [np.int64, np.uint16, np.uint32, np.uint64, np.bool_]
    assert feeds[5].dtype == object and all(isinstance(s, str) for s in feeds[5].ravel())
    for f in feeds[:4]:
        assert INT_RANGE[0] <= f.min() and f.max() <= INT_RANGE[1]
    rows, total, _, text = runner.run(feeds)
    assert rows.shape == (1, 6, 2) and total.shape == (1, 3) and text.tolist() == feeds[5].tolist()


def test_bench_runs_a_model_with_integer_bool_and_string_inputs(tmp_path) -> None:
    res = CliRunner().invoke(app, ["bench", str(many_types(tmp_path / "m.onnx")), *FAST, "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["results"]
    assert row["latency"]["p50"] > 0 and row["latency"]["runs"] >= 5


def test_a_type_numpy_cannot_feed_is_refused_by_name(tmp_path) -> None:
    v = helper.make_tensor_value_info
    path = _save(tmp_path / "bf16.onnx", [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                 [v("x", TensorProto.BFLOAT16, [1, 4])], [v("y", TensorProto.FLOAT, [1, 4])])
    res = CliRunner().invoke(app, ["bench", str(path), *FAST], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "input 'x' has type bfloat16, which cannot be fed from numpy" in err


def _gather(path: Path, rows: int) -> Path:
    v = helper.make_tensor_value_info
    table = numpy_helper.from_array(np.zeros((rows, 2), np.float32), "table")
    return _save(path, [helper.make_node("Gather", ["table", "index"], ["y"], axis=0)],
                 [v("index", TensorProto.INT64, [1, 8])], [v("y", TensorProto.FLOAT, [1, 8, 2])], [table])


def test_int_range_reaches_the_probe_and_the_feeds(tmp_path) -> None:
    model = _gather(tmp_path / "g.onnx", rows=4)
    ok = CliRunner().invoke(app, ["bench", str(model), *FAST], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output  # 0..3 indexes a 4-row table
    far = CliRunner().invoke(app, ["bench", str(model), *FAST, "--int-range", "10:12"], catch_exceptions=False)
    assert far.exit_code == 2 and "cannot run the model" in far.stderr, far.output  # the probe used 10..12
    feeds = make_feeds(open_runner(model).inputs, 0, int_range=(10, 12))
    assert feeds[0].min() >= 10 and feeds[0].max() <= 12
    bad = CliRunner().invoke(app, ["bench", str(model), "--int-range", "5:1"], catch_exceptions=False)
    assert bad.exit_code == 2 and "LO is above HI" in bad.stderr
