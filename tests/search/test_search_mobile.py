"""A real search for mobile-cpu: two local workers, the timing lock and the final interleaved round."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.pipeline.search.results import SearchResult
from edgeopt.report.schema import Report
from tests.search.searching import BENCH, CNN, check_front

pytestmark = pytest.mark.tensorflow


def test_mobile_search_two_workers(cli, tmp_path: Path, profile, tiny_data):
    _, ev, calib = tiny_data
    prof = profile("mob", 'extends = "mobile-cpu"\n' + BENCH + "[budgets]\nmax_accuracy_drop = 5.0\n"
                   "[partial]\naccuracy_control = false\n"
                   '[search]\nobjectives = ["accuracy_drop", "bytes", "p50_latency"]\n'
                   'schemes = ["int8", "float16", "dynamic"]\nclusters = [0, 8]\n')
    out = tmp_path / "o"
    r = cli("search", CNN, "-t", prof, "--trials", "4", "--workers", "2", "--eval", ev, "--calib", calib,
            "--out", out, "--seed", "3")
    assert r.exit_code == 0, r.stderr
    res = SearchResult.model_validate_json((out / "search.json").read_text())
    assert res.counts.complete == 4 and res.study.storage == f"sqlite:///{(out / 'search.db').resolve()}"
    done = [t for t in res.trials if t.state == "COMPLETE"]
    assert len({t.number for t in done}) == 4
    for t in done:  # each trial is a real build with its report
        rep = Report.model_validate_json((Path(t.folder) / "report.json").read_text())
        assert rep.optimized.artifact.bytes == t.bytes and rep.optimized.artifact.scheme == t.params["scheme"]
        assert rep.optimized.latency_ms is not None and rep.optimized.latency_ms.p50 == t.p50_ms
    check_front(res)
    assert res.chosen is not None and res.ok
    best = Report.model_validate_json((out / "best" / "report.json").read_text())
    assert best.ok and all(b.ok is not False for b in best.budgets)
    assert (out / "best" / "manifest.json").is_file() and (out / "best" / "digits_cnn.tflite").is_file()
    feasible = [t for t in done if t.feasible]
    assert res.chosen.values["accuracy_drop"] == min(t.values["accuracy_drop"] for t in feasible if t.values)
    fr = res.latency.final_round
    assert fr is not None and fr.baseline_p50_ms > 0 and len(fr.artifacts) == len(res.front)
    assert all(p.p50_ms_final is not None and p.p50_ms_final > 0 for p in res.front)
    assert ".timing-lock" in res.latency.trials and "no two trials" in res.latency.trials
    assert sum("done:" in line for line in r.stderr.splitlines()) == 4  # one line per trial in a pipe
    assert "Pareto front" in r.stdout and f"chosen: trial {res.chosen.number}" in r.stdout
    html = (out / "search.html").read_text()
    assert "<svg" in html and "trials/" in html
