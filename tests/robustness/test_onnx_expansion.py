"""ONNX model-local functions cannot make onnx or onnxruntime expand a small file into billions of nodes.

A 40-deep chain of functions, each calling the next twice, is ~3 KB and expands to 2^40 nodes: inspect and
bench ran for hours inside onnx.shape_inference / onnxruntime, deaf to Ctrl-C and SIGTERM. The expanded count
is now computed in linear time and capped (EDGEOPT_MAX_ONNX_NODES) before any onnx C++ call. Every command runs
in a subprocess with a timeout, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import InputError, ModelFileError
from edgeopt.runtime.onnx_expansion import DEFAULT_MAX_NODES, expanded_nodes
from edgeopt.runtime.verify_onnx import load_onnx
from tests.robustness.conftest import ROOT, edgeopt, error_line

DOMAIN = "d"
OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]


def _function(name: str, callees: list[str]) -> onnx.FunctionProto:
    """y = callees applied in turn to x; a leaf (no callee) is one Relu."""
    if not callees:
        return helper.make_function(DOMAIN, name, ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])], OPSETS)
    names = ["x", *(f"t{i}" for i in range(len(callees) - 1)), "y"]
    nodes = [helper.make_node(c, [names[i]], [names[i + 1]], domain=DOMAIN) for i, c in enumerate(callees)]
    return helper.make_function(DOMAIN, name, ["x"], ["y"], nodes, OPSETS)


def _fan_out(depth: int, calls: int = 2) -> list[onnx.FunctionProto]:
    """f0 .. f{depth-1}: each calls the next `calls` times; the last is a Relu."""
    return [_function(f"f{i}", [f"f{i + 1}"] * calls if i < depth - 1 else []) for i in range(depth)]


def _model(path: Path, functions: list[onnx.FunctionProto], weight: bool = False) -> Path:
    """x [1, 4] -> (MatMul by a [4, 8] weight when `weight`) -> f0 -> z -> Identity -> y; z's shape is inferred."""
    nodes, inits, width = [], [], 4
    if weight:
        w = np.arange(32, dtype=np.float32).reshape(4, 8) / 32
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["h"]))
        width = 8
    nodes.append(helper.make_node("f0", ["h" if weight else "x"], ["z"], domain=DOMAIN))
    nodes.append(helper.make_node("Identity", ["z"], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], inits)
    model = helper.make_model(g, opset_imports=OPSETS, functions=functions)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def fan_out_40(tmp_path) -> Path:
    path = _model(tmp_path / "fan_out.onnx", _fan_out(40))
    assert path.stat().st_size < 4096  # a few KB on disk
    return path


# cost(f39) = 1 (a Relu); cost(fi) = 2 call nodes + 2 x cost(f(i+1)) = 3 * 2^(39-i) - 2; the graph adds its call
# node and the Identity
FAN_OUT_40_NODES = 2 + 3 * 2**39 - 2


@pytest.mark.parametrize("command", ["inspect", "bench"])
def test_fan_out_refused_in_seconds_naming_count_and_cap(fan_out_40, command) -> None:
    start = time.monotonic()
    r = edgeopt(command, fan_out_40, timeout=90)  # before the cap this ran for hours: TimeoutExpired fails
    elapsed = time.monotonic() - start
    line = error_line(r)  # exit 2, one line, no traceback
    assert f"{FAN_OUT_40_NODES:,} nodes" in line and f"cap of {DEFAULT_MAX_NODES:,}" in line, line
    assert "EDGEOPT_MAX_ONNX_NODES" in line
    assert elapsed < 30, elapsed  # python start-up and imports on a loaded 2-core host; the count takes ms


def test_moderate_functions_inspect_unchanged(tmp_path) -> None:
    path = _model(tmp_path / "moderate.onnx", _fan_out(3), weight=True)
    r = edgeopt("inspect", path, "--json", timeout=90)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["params"], d["macs"]) == (4 * 8, 4 * 8)  # the top-level MatMul; function bodies hold no weights
    call = next(layer for layer in d["layers"] if layer["op"] == "d:f0")
    assert call["output_shape"] == [1, 8]  # inferred through the three levels of functions
    assert d["op_counts"] == {"Identity": 1, "MatMul": 1, "d:f0": 1}


def test_expanded_count_is_memoised_and_exact(tmp_path) -> None:
    moderate = load_onnx(_model(tmp_path / "m.onnx", _fan_out(3), weight=True))
    # MatMul, Identity, the call and f0 expanded (2 calls + 2 x f1 = 2 calls + 2 x f2 = a Relu)
    assert expanded_nodes(Path("m.onnx"), moderate) == 3 + (2 + 2 * (2 + 2 * 1))
    deep = onnx.load(str(_model(tmp_path / "deep.onnx", _fan_out(2000, calls=3))))
    start = time.monotonic()
    count = expanded_nodes(Path("deep.onnx"), deep)  # 3^2000 nodes: saturates, linear time
    assert count == 10**18 and time.monotonic() - start < 2


def test_cap_follows_the_environment(tmp_path, monkeypatch) -> None:
    path = _model(tmp_path / "m.onnx", _fan_out(3), weight=True)  # 13 nodes expanded
    monkeypatch.setenv("EDGEOPT_MAX_ONNX_NODES", "13")
    assert load_onnx(path).graph.node[0].op_type == "MatMul"
    monkeypatch.setenv("EDGEOPT_MAX_ONNX_NODES", "12")
    with pytest.raises(ModelFileError, match=r"expands to 13 nodes .*over the cap of 12;"):
        load_onnx(path, check=False)
    monkeypatch.setenv("EDGEOPT_MAX_ONNX_NODES", "lots")
    with pytest.raises(InputError, match=r"EDGEOPT_MAX_ONNX_NODES='lots' is not a node count"):
        load_onnx(path)


def _mutual(path: Path) -> Path:
    return _model(path, [_function("f0", ["f1"]), _function("f1", ["f0"])])


def test_mutual_recursion_is_exit_2(tmp_path) -> None:
    r = edgeopt("inspect", _mutual(tmp_path / "loop.onnx"), timeout=90)
    line = error_line(r)
    assert "call each other in a cycle (d:f0 -> d:f1 -> d:f0)" in line, line


def test_refused_by_edgeopt_not_only_by_the_onnx_checker(tmp_path) -> None:
    """Files edgeopt reads without onnx.checker (check=False) are bounded too."""
    with pytest.raises(ModelFileError, match=r"cycle \(d:f0 -> d:f1 -> d:f0\)"):
        load_onnx(_mutual(tmp_path / "loop.onnx"), check=False)
    twice = _model(tmp_path / "twice.onnx", [_function("f0", []), _function("f0", [])])
    with pytest.raises(ModelFileError, match=r"defines function 'd:f0' twice"):
        load_onnx(twice, check=False)
    inside_if = tmp_path / "if.onnx"  # a call inside an If branch counts as much as one at top level
    branch = helper.make_graph([helper.make_node("f0", ["x"], ["b"], domain=DOMAIN)], "then", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)], "g",
                          [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                           helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g, opset_imports=OPSETS, functions=_fan_out(30)), str(inside_if))
    with pytest.raises(ModelFileError, match=rf"expands to {1 + 2 * (1 + 3 * 2**29 - 2):,} nodes"):
        load_onnx(inside_if, check=False)


def test_ctrl_c_while_the_probe_child_loads_is_exit_130(tmp_path) -> None:
    """Under the cap a large expansion still takes onnxruntime seconds, in the probe child: Ctrl-C ends both."""
    path = _model(tmp_path / "slow.onnx", _fan_out(15))  # 49,151 nodes: onnxruntime takes seconds to load it
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edgeopt", "bench", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        child = _wait_for_child(proc, "edgeopt.runtime.probe_child", 60)
        time.sleep(2)  # inside onnxruntime's session creation (C++), past the child's imports
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole foreground group
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert time.monotonic() - sent < 10
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:  # killed, reaped by init
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for_child(proc: subprocess.Popen, needle: str, limit: float) -> int:
    pid, deadline = proc.pid, time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for kid in task.read_text().split():
                cmd = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if needle in cmd:
                    return int(kid)
        time.sleep(0.05)
    msg = f"no {needle} child of {pid} within {limit} s (exit {proc.poll()})"
    raise AssertionError(msg)
