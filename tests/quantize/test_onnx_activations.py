"""int8 ONNX activations: S8S8 and U8S8 measured and the faster kept; max_latency_ratio keeps `ok` honest.

Real quantization, onnxruntime and the benchmark protocol; nothing asserts a timing, only that the choice and
the budget agree with what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from edgeopt.profiles import load_profile
from edgeopt.profiles.schema import OnnxActivations
from edgeopt.quantize.onnx_activations import Candidate, is_x86, pick
from edgeopt.validate.accuracy import AccuracyResult
from edgeopt.validate.metrics import OutputScore
from edgeopt.vocabulary import AccuracyMetric as M

from .old_onnx import calibration, cnn

QUICK = "\n[benchmark]\nwarmup_runs = 1\nwarmup_seconds = 0.0\nruns = 5\nmin_seconds = 0.05\n"


def _profile(tmp_path: Path, quantize: str = "", budgets: str = "") -> Path:
    p = tmp_path / "p.toml"
    p.write_text(f'extends = "edge-server"\nname = "p"\n[quantize]\n{quantize}\n[budgets]\n{budgets}\n{QUICK}')
    return p


def _build(cli, tmp_path: Path, profile: Path, *extra: str):
    model = cnn(tmp_path / "m.onnx", opset=17)
    res = cli("build", model, "--target", profile, "--out", tmp_path / "out", "--json",
              "--calib", calibration(tmp_path / "c.npz"), *extra)
    return res, (json.loads(res.stdout) if res.stdout.strip() else None)


def _activation_types(path: Path) -> set[int]:
    """Element types of the zero points of activation QuantizeLinear nodes."""
    m = onnx.load(str(path))
    inits = {t.name: t for t in m.graph.initializer}
    return {inits[n.input[2]].data_type for n in m.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}


def test_edge_server_profile_defaults() -> None:
    p = load_profile("edge-server").profile
    assert p.budgets.max_latency_ratio == 1.0 and p.quantize.onnx_activations is OnnxActivations.AUTO


def test_auto_measures_both_and_keeps_the_faster(cli, tmp_path) -> None:
    res, rep = _build(cli, tmp_path, _profile(tmp_path, budgets="max_latency_ratio = 1000.0"))
    assert res.exit_code == 0, res.output
    st = rep["stages"]["onnx_activations"]
    assert st["measured"] is True and [c["kind"] for c in st["candidates"]] == ["S8S8", "U8S8"]
    fastest = min(st["candidates"], key=lambda c: c["p50_ms"])
    assert st["chosen"] == fastest["activations"] and all(c["p50_ms"] > 0 for c in st["candidates"])
    for c in st["candidates"]:
        assert c["latency_ratio"] == pytest.approx(c["p50_ms"] / st["baseline_p50_ms"])
    expected = {onnx.TensorProto.UINT8} if st["chosen"] == "uint8" else {onnx.TensorProto.INT8}
    assert _activation_types(tmp_path / "out" / "m.onnx") == expected
    note = next(n for n in rep["notes"] if n.startswith("int8 activations:"))
    assert f"{fastest['kind']} kept (the faster)" in note and "S8S8" in note and "U8S8" in note
    budget = next(b for b in rep["budgets"] if b["name"] == "max_latency_ratio")
    assert budget["ok"] is True and budget["actual"] == pytest.approx(rep["ratios"]["latency_p50"], rel=1e-3)


@pytest.mark.parametrize("kind,dtype", [("int8", onnx.TensorProto.INT8), ("uint8", onnx.TensorProto.UINT8)])
def test_fixed_activation_type(cli, tmp_path, kind, dtype) -> None:
    res, rep = _build(cli, tmp_path, _profile(tmp_path, f'onnx_activations = "{kind}"'), "--no-bench")
    assert res.exit_code == 0, res.output
    st = rep["stages"]["onnx_activations"]
    assert st["chosen"] == kind and st["measured"] is False and len(st["candidates"]) == 1
    assert _activation_types(tmp_path / "out" / "m.onnx") == {dtype}
    assert any("set by quantize.onnx_activations" in n for n in rep["notes"])
    assert any(n == "max_latency_ratio not checked: the benchmark was skipped" for n in rep["notes"])


def test_auto_without_benchmark_takes_the_cpus_choice_and_says_so(cli, tmp_path) -> None:
    res, rep = _build(cli, tmp_path, _profile(tmp_path), "--no-bench")
    assert res.exit_code == 0, res.output
    chosen = "uint8" if is_x86() else "int8"
    assert rep["stages"]["onnx_activations"]["chosen"] == chosen
    assert any("not measured because the benchmark was skipped" in n for n in rep["notes"])


def test_latency_ratio_budget_fails_the_build_with_exit_3(cli, tmp_path) -> None:
    """No int8 artifact is 1000x faster than float: the budget must fail, and `ok` with it."""
    res, rep = _build(cli, tmp_path, _profile(tmp_path, budgets="max_latency_ratio = 0.001"))
    assert res.exit_code == 3, res.output
    assert "max_latency_ratio:" in res.stderr and "x float p50 > limit 0.001" in res.stderr
    budget = next(b for b in rep["budgets"] if b["name"] == "max_latency_ratio")
    assert budget["ok"] is False and rep["ok"] is False
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["ok"] is False
    slower = round(rep["ratios"]["latency_p50"], 2) > 1.0
    assert any(n.startswith("the optimized artifact is slower than the float baseline") for n in rep["notes"]) == slower


def test_latency_ratio_budget_from_a_ratio() -> None:
    from edgeopt.pipeline.reporting import _budgets
    from edgeopt.report import schema as rs

    opt = rs.Variant(artifact=rs.ArtifactInfo(path="m.onnx", format="onnx", scheme="int8", bytes=10, sha256="0" * 64),
                     accuracy=None, latency_ms=None)
    profile = load_profile("edge-server").profile
    budgets, _ = _budgets(profile, opt, None, 1.5)
    (b,) = [b for b in budgets if b.name == "max_latency_ratio"]
    assert (b.ok, b.actual, b.limit, b.unit) == (False, 1.5, 1.0, "x float p50")
    budgets, _ = _budgets(profile, opt, None, 0.5)
    assert next(b for b in budgets if b.name == "max_latency_ratio").ok is True
    budgets, notes = _budgets(profile, opt, None, None)
    assert next(b for b in budgets if b.name == "max_latency_ratio").ok is None
    assert "max_latency_ratio not checked: the benchmark was skipped" in notes


def _cand(kind: OnnxActivations, p50: float, drop: float, within: bool, samples: int = 100) -> Candidate:
    out = OutputScore("y", M.TOP1, 90.0 - drop, 90.0, drop, 99.0, 30.0, 0.99, 0.1)
    acc = AccuracyResult("top1", "float", 90.0 - drop, 90.0, drop, 99.0, 30.0, samples, (out,))
    return Candidate(kind, Path("x.onnx"), p50, acc, within)


def test_pick_prefers_speed_within_the_accuracy_budget() -> None:
    s8, u8 = OnnxActivations.INT8, OnnxActivations.UINT8
    assert pick([_cand(s8, 2.0, 0.0, True), _cand(u8, 1.0, 0.5, True)])[0].activations is u8
    chosen, why = pick([_cand(s8, 2.0, 0.0, True), _cand(u8, 1.0, 3.0, False)])
    assert chosen.activations is s8 and why == "the only one within the accuracy budgets"
    chosen, why = pick([_cand(s8, 2.0, 4.0, False), _cand(u8, 1.0, 3.0, False)])
    assert chosen.activations is u8 and "kept the faster" in why


def test_pick_takes_the_faster_of_candidates_tied_within_one_eval_sample() -> None:
    """Neither meets the budgets: 100 samples, one flipped sample is 1 point. S8S8 is 0.5 points better but 3x
    slower: a tie, the faster wins (it shipped at 3.75x float before). 2 points apart is no tie."""
    s8, u8 = OnnxActivations.INT8, OnnxActivations.UINT8
    chosen, why = pick([_cand(s8, 3.0, 2.0, False), _cand(u8, 1.0, 2.5, False)])
    assert chosen.activations is u8 and why == ("none meets the accuracy budgets; tied on accuracy within one eval "
                                                "sample, kept the faster")
    chosen, why = pick([_cand(s8, 3.0, 2.0, False), _cand(u8, 1.0, 4.0, False)])
    assert chosen.activations is s8 and why == "none meets the accuracy budgets; kept the most accurate"
    # with 1000 samples one sample is 0.1 point: 0.5 points apart is no tie
    chosen, _ = pick([_cand(s8, 3.0, 2.0, False, 1000), _cand(u8, 1.0, 2.5, False, 1000)])
    assert chosen.activations is s8


def test_tied_candidates_are_measured_and_the_faster_kept(cli, tmp_path) -> None:
    """A real model, both candidates timed and scored on eval data; an unreachable SNR floor makes neither meet
    the budgets, so the rule for ties decides. Asserts the table and the rule, not which one is faster here."""
    import numpy as np

    np.savez(tmp_path / "e.npz", x=np.random.default_rng(2).random((40, 3, 16, 16), dtype=np.float32))
    prof = _profile(tmp_path, budgets="max_latency_ratio = 1000.0\nmin_snr_db = 199.0")
    prof.write_text(prof.read_text() + "\n[partial]\naccuracy_control = false\n")  # no float layers to reach it
    res, rep = _build(cli, tmp_path, prof, "--eval", tmp_path / "e.npz")
    assert res.exit_code == 3, res.output  # the floor fails: a budget failure
    st = rep["stages"]["onnx_activations"]
    cands = st["candidates"]
    assert st["measured"] is True and [c["kind"] for c in cands] == ["S8S8", "U8S8"]
    for c in cands:  # each candidate's accuracy and p50 are listed
        assert c["metric"] == "agreement" and 0 <= c["accuracy"] <= 100 and c["p50_ms"] > 0
        assert c["accuracy_drop"] == pytest.approx(100.0 - c["accuracy"]) and c["within_budget"] is False
    best = min(c["accuracy_drop"] for c in cands)
    level = [c for c in cands if c["accuracy_drop"] - best <= 100.0 / 40 + 1e-9]
    chosen = next(c for c in cands if c["activations"] == st["chosen"])
    assert chosen in level and chosen["p50_ms"] == min(c["p50_ms"] for c in level)
    note = next(n for n in rep["notes"] if n.startswith("int8 activations:"))
    assert ("tied on accuracy within one eval sample, kept the faster" in note) == (len(level) == 2)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| activations | p50 ms | ratio to float | metric | accuracy | accuracy drop | within budget |" in md
