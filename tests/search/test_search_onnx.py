"""`edgeopt search` on an ONNX model for mobile-cpu: every trial is an onnx2tf conversion, proven, then quantized."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.pipeline.search.results import SearchResult
from edgeopt.report.schema import Report
from tests.pipeline.test_onnx_tflite_build import _data, digits_conv
from tests.search.searching import BENCH, check_front

pytestmark = pytest.mark.onnx2tf


def test_an_onnx_model_is_searched_for_mobile_cpu(cli, tmp_path: Path, profile):
    _data(tmp_path, "digits_conv")  # NCHW digits, the ONNX model's layout
    model = digits_conv(tmp_path / "digits_conv.onnx")
    before = model.read_bytes()
    prof = profile("onnx-mob", 'extends = "mobile-cpu"\n' + BENCH + "[partial]\naccuracy_control = false\n"
                   '[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["int8", "float16", "dynamic"]\n')
    out = tmp_path / "o"
    r = cli("search", model, "-t", prof, "--trials", "2", "--eval", tmp_path / "digits_conv.eval.npz", "--calib",
            tmp_path / "digits_conv.calib.npz", "--out", out, "--seed", "0")
    assert r.exit_code == 0, r.output
    res = SearchResult.model_validate_json((out / "search.json").read_text())
    assert res.counts.complete == 2
    done = [t for t in res.trials if t.state == "COMPLETE"]
    assert len({t.params["scheme"] for t in done}) == 2  # two schemes tried
    for t in done:  # each trial converted the ONNX model with onnx2tf, proved it, and quantized the .tflite
        folder = Path(t.folder)
        rep = Report.model_validate_json((folder / "report.json").read_text())
        conversion = rep.stages.conversion
        assert conversion is not None and conversion.converter.startswith("onnx2tf ")
        assert conversion.sample_source == "eval data" and all(o.snr_db > 60 for o in conversion.outputs)
        assert conversion.inputs_layout[0].layout == "NHWC (the source model's NCHW)"
        artifact = folder / "digits_conv.tflite"
        assert artifact.read_bytes()[4:8] == b"TFL3" and artifact.stat().st_size == t.bytes
        assert rep.optimized.artifact.scheme == t.params["scheme"] and t.accuracy is not None and t.accuracy > 80
    check_front(res)
    assert res.chosen is not None and res.ok
    best = Report.model_validate_json((out / "best" / "report.json").read_text())
    assert best.stages.conversion is not None and best.optimized.artifact.scheme == res.chosen.params["scheme"]
    assert (out / "best" / "digits_conv.tflite").read_bytes() == \
        (Path(res.chosen.folder) / "digits_conv.tflite").read_bytes()
    assert f"chosen: trial {res.chosen.number}" in r.stdout
    assert model.read_bytes() == before  # onnx2tf only ever saw private copies
