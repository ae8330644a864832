"""Notes are summaries on the console: one line per kind of note with a count; report.json keeps every note."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.report.notes import kind, summarize


def test_notes_of_one_kind_are_one_line_with_a_count() -> None:
    notes = [f"output 'head{i}' is scored by snr and no accuracy budget applies to it: set budgets.min_snr_db"
             for i in range(8)] + ["eval data has no labels: top-1 not measured"] * 3 + \
        ["If 'a/b': MACs count its most expensive branch (then_branch, 1,234)",
         "output 'x' is far below the float model: SNR 3.1 dB, cosine 0.5"]
    lines = summarize(notes, "report.json")
    assert lines == [
        "note: output 'head0' is scored by snr and no accuracy budget applies to it: set budgets.min_snr_db "
        "[8 notes of this kind; the other 7 in report.json]",
        "note: eval data has no labels: top-1 not measured [3 notes of this kind, all the same]",
        "note: If 'a/b': MACs count its most expensive branch (then_branch, 1,234)",
        "warning: output 'x' is far below the float model: SNR 3.1 dB, cosine 0.5",
    ]
    assert kind("If 'c': MACs count its most expensive branch (else_branch, 99)") == kind(notes[11])
    assert summarize([], "report.json") == []


def test_build_console_summarises_and_report_json_keeps_every_note(cli, tmp_path: Path) -> None:
    """Four regression heads, floors off: four "no accuracy budget applies" notes, one console line."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"])]
    outs = []
    for i in range(4):
        nodes.append(helper.make_node("Mul", ["h", f"k{i}"], [f"head{i}"]))
        outs.append(helper.make_tensor_value_info(f"head{i}", TensorProto.FLOAT, ["N", 3]))
    ks = [numpy_helper.from_array(np.full((3,), i + 1.0, np.float32), f"k{i}") for i in range(4)]
    g = helper.make_graph(nodes, "heads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])], outs,
                          [w, *ks])
    model = tmp_path / "heads.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    x = np.random.default_rng(1).standard_normal((60, 6)).astype(np.float32)
    np.savez(tmp_path / "heads.calib.npz", x=x[:30])
    np.savez(tmp_path / "heads.eval.npz", x=x[30:])
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "edge-server"\nname = "p"\n[budgets]\nmin_snr_db = false\nmin_cosine = false\n'
                    "[partial]\naccuracy_control = false\n")
    res = cli("build", model, "--target", prof, "--out", tmp_path / "out", "--no-bench")
    assert res.exit_code == 0, res.output
    console = " ".join(res.stdout.split())  # the console wraps at 80 columns
    assert console.count("is scored by snr and no accuracy budget applies") == 1
    assert "[4 notes of this kind; the other 3 in report.json]" in console
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    scored = [n for n in report["notes"] if "is scored by snr and no accuracy budget applies" in n]
    assert [n.split("'")[1] for n in scored] == ["head0", "head1", "head2", "head3"]
