"""No collapsed int8 artifact ships as ok: an ONNX classifier whose int8 output is one value (a huge-range channel
before the softmax takes the whole int8 range of the logits) agrees 100 % with its near-uniform float output, yet
the build for edge-server fails naming the output (exit 3) or accuracy control moves the culprit to float; a healthy
model still passes. Real onnxruntime quantization and runtime, models built with onnx.helper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _classifier(path: Path, big: float) -> Path:
    """x [N,8] -> MatMul [8,5] -> Add -> Slice(:4) -> Softmax -> probs [N,4]; the 5th logit (weights `big`) is
    sliced away but sets the int8 range of the logits; class 0 wins by a small margin in float."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((8, 5)) * 0.05).astype(np.float32)
    w[:, 4] = big
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0.5, 0, 0, 0, 0], np.float32), "b"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([4], np.int64), "s1"),
             numpy_helper.from_array(np.array([1], np.int64), "ax")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"),
             helper.make_node("Add", ["m", "b"], ["logits5"], name="bias"),
             helper.make_node("Slice", ["logits5", "s0", "s1", "ax"], ["logits"], name="keep4"),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1)]
    g = helper.make_graph(nodes, "classifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    x = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    np.savez(path.with_suffix(".calib.npz"), x=x[:100])
    np.savez(path.with_suffix(".eval.npz"), x=x[100:])
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("collapse")
    _classifier(d / "flat.onnx", 1000.0)
    _classifier(d / "healthy.onnx", 0.05)
    (d / "plain.toml").write_text('extends = "edge-server"\nname = "plain"\n[partial]\naccuracy_control = false\n')
    return d


def _build(cli, models: Path, model: str, target: str, out: Path):
    res = cli("build", models / model, "--target", target, "--out", out, "--no-bench", "--json")
    return res, json.loads((out / "report.json").read_text())


def test_a_collapsed_int8_output_fails_the_build_naming_it(cli, models: Path, tmp_path: Path) -> None:
    res, rep = _build(cli, models, "flat.onnx", str(models / "plain.toml"), tmp_path / "out")
    assert res.exit_code == 3, res.output  # as every budget failure
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and "constant_output (probs): 0 std < limit" in errors[0]
    (o,) = rep["optimized"]["accuracy"]["outputs"]
    assert o["metric"] == "agreement" and o["agreement"] == 100.0  # what let it pass before
    assert o["ok"] is False and o["budget"] == "constant_output"
    rows = {b["name"]: b for b in rep["budgets"]}
    assert rows["max_accuracy_drop"]["ok"] is True and rows["constant_output (probs)"]["ok"] is False
    assert rows["constant_output (probs)"]["actual"] == 0.0 and rows["constant_output (probs)"]["limit"] > 0.01
    assert rep["ok"] is False
    assert any(n.startswith("output 'probs' is far below the float model") and "all one value" in n
               for n in rep["notes"])
    assert (tmp_path / "out" / "flat.onnx").is_file()  # the artifacts and the report are still written


def test_accuracy_control_does_not_keep_the_collapsed_plain_int8(cli, models: Path, tmp_path: Path) -> None:
    res, rep = _build(cli, models, "flat.onnx", "edge-server", tmp_path / "out")
    part = rep["stages"]["partial"]
    assert part is not None and part["steps"][0]["within_budget"] is False  # plain int8: collapsed
    (o,) = rep["optimized"]["accuracy"]["outputs"]
    rows = {b["name"]: b for b in rep["budgets"]}
    assert res.exit_code == 0, res.output  # layers moved to float until the output is no longer constant
    assert part["met"] and part["steps"][part["chosen"]]["out_of_int8"]
    assert "constant_output (probs)" not in rows and o["ok"] is True and o["snr_db"] > 20


def test_a_healthy_model_passes_every_floor(cli, models: Path, tmp_path: Path) -> None:
    res, rep = _build(cli, models, "healthy.onnx", "edge-server", tmp_path / "out")
    assert res.exit_code == 0, res.output
    rows = {b["name"]: b for b in rep["budgets"]}
    assert {k: rows[k]["ok"] for k in ("max_accuracy_drop", "min_snr_db", "min_cosine")} == \
        {"max_accuracy_drop": True, "min_snr_db": True, "min_cosine": True}
    assert rows["min_snr_db"]["actual"] > 20 and rows["min_cosine"]["actual"] > 0.99
    assert not any("far below" in n for n in rep["notes"])
